//! `web_fetch`: one GET through the same HTTP seam the providers use, so it
//! works natively and, through `wasi:http`, in the wasip2 component. Text
//! only; HTML is turned into readable text.

use std::time::{Duration, Instant};

use super::{size, Args, Kind, Param, Spec, ToolSettings};
use crate::http::{self, HttpError, Method, Request, Timeouts};

pub const SPEC: Spec = Spec {
    name: "web_fetch",
    description: "Fetch a web page or text document by URL (http or https) and return its \
                  text; HTML is reduced to its readable text.",
    params: &[Param {
        name: "url",
        kind: Kind::String,
        required: true,
        doc: "The absolute http:// or https:// URL.",
    }],
};

/// Redirects followed before the fetch gives up.
const MAX_REDIRECTS: usize = 5;

/// Fetches the URL, following redirects, within `web_timeout` overall
/// (a server that drips its bytes cannot hold the turn).
pub fn run(settings: &ToolSettings, args: &Args) -> Result<(String, String), String> {
    let url: String = args.get("url")?;
    let deadline = Instant::now() + settings.web_timeout;
    let late = || {
        format!(
            "{url} did not answer within {} s",
            settings.web_timeout.as_secs()
        )
    };
    let mut at = url.clone();
    let mut redirects = 0;
    let mut response = loop {
        http::Url::parse(&at).map_err(|e| e.to_string())?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(late());
        }
        let response = http::send(&get(&at, left)).map_err(|e| e.to_string())?;
        if !matches!(response.status, 301 | 302 | 303 | 307 | 308) {
            break response;
        }
        let location = response
            .header("location")
            .ok_or_else(|| format!("{at} answered HTTP {} without a Location", response.status))?;
        if redirects == MAX_REDIRECTS {
            return Err(format!(
                "{url} redirected more than {MAX_REDIRECTS} times (last to {location})"
            ));
        }
        at = joined(&at, location);
        redirects += 1;
    };
    if !(200..300).contains(&response.status) {
        return Err(format!("{at} answered HTTP {}", response.status));
    }
    let kind = response
        .header("content-type")
        .unwrap_or("text/plain")
        .to_ascii_lowercase();
    let textual = kind.starts_with("text/")
        || ["json", "xml", "javascript", "yaml", "csv"]
            .iter()
            .any(|t| kind.contains(t));
    if !textual {
        return Err(format!("{at} is {kind}, not text"));
    }
    let body = response
        .read_to_end(settings.web_max_bytes, Some(deadline))
        .map_err(|e| match e {
            HttpError::TooLarge(limit) => format!("{at} is larger than {}", size(limit)),
            HttpError::Timeout { .. } => late(),
            other => other.to_string(),
        })?;
    let text = String::from_utf8_lossy(&body);
    let mut text = if kind.contains("html") {
        readable(&text)
    } else {
        text.into_owned()
    };
    if at != url {
        text = format!("[redirected to {at}]\n{text}");
    }
    let summary = format!("{at} -> {}", size(text.len()));
    Ok((text, summary))
}

/// A GET of `url` that may take at most `left`.
fn get(url: &str, left: Duration) -> Request {
    Request {
        method: Method::Get,
        url: url.to_owned(),
        headers: vec![
            ("user-agent".into(), http::USER_AGENT.into()),
            (
                "accept".into(),
                "text/html, text/plain, application/json;q=0.9, */*;q=0.1".into(),
            ),
        ],
        body: Vec::new(),
        timeouts: Timeouts {
            connect: left,
            response: left,
        },
    }
}

/// Where a redirect's `Location` points, read against the URL that sent it.
fn joined(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_owned();
    }
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{}{rest}", &base[..scheme_end]);
    }
    let authority_end = base[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(base.len(), |i| scheme_end + i);
    if location.starts_with('/') {
        return format!("{}{location}", &base[..authority_end]);
    }
    let path = &base[authority_end..];
    let path = &path[..path.find(['?', '#']).unwrap_or(path.len())];
    if location.starts_with('?') {
        return format!("{}{path}{location}", &base[..authority_end]);
    }
    // Relative to the base's directory.
    let directory = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    let directory = if directory.is_empty() { "/" } else { directory };
    format!("{}{directory}{location}", &base[..authority_end])
}

/// The readable text of an HTML page: scripts, styles and tags removed,
/// the common entities decoded, blank lines and runs of spaces dropped.
pub fn readable(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        rest = &rest[open..];
        let skip_to = ["script", "style", "noscript"]
            .iter()
            .find(|tag| starts_with_ignore_case(&rest[1..], tag))
            .map(|tag| format!("</{tag}"));
        let end = match skip_to {
            Some(close) => find_ignore_case(rest, &close)
                .and_then(|at| rest[at..].find('>').map(|gt| at + gt + 1)),
            None => rest.find('>').map(|gt| gt + 1),
        };
        let tag = &rest[..end.unwrap_or(rest.len())];
        let breaks = [
            "<p", "<br", "<div", "<li", "<h", "<tr", "</p", "</div", "</h",
        ]
        .iter()
        .any(|b| starts_with_ignore_case(tag, b));
        out.push(if breaks { '\n' } else { ' ' });
        rest = &rest[end.unwrap_or(rest.len())..];
    }
    out.push_str(rest);
    let decoded = decode_entities(&out);
    let mut text = String::with_capacity(decoded.len());
    for line in decoded.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if !line.is_empty() {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text.trim_end().to_owned()
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// Where `needle` (ASCII) first occurs in `text`, ignoring ASCII case, in
/// one pass (lowering the rest of the page for every tag was quadratic).
fn find_ignore_case(text: &str, needle: &str) -> Option<usize> {
    text.as_bytes()
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        // Looked for close by only: a page of bare `&`s stays linear.
        let entity = rest.as_bytes()[..rest.len().min(11)]
            .iter()
            .position(|&b| b == b';')
            .map(|semi| (&rest[1..semi], semi + 1));
        let decoded = entity.and_then(|(name, len)| {
            let c = match name {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" | "#39" => '\'',
                "nbsp" => ' ',
                _ => {
                    let number = name.strip_prefix('#')?;
                    let code = match number.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => number.parse().ok()?,
                    };
                    char::from_u32(code)?
                }
            };
            Some((c, len))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_readable_text() {
        let html = "<html><head><title>T</title><style>p{color:red}</style>\
                    <script>alert('x < y')</script></head><body><h1>Hello &amp; welcome</h1>\
                    <p>One&nbsp;line &lt;here&gt; &#233;&#x4e16;</p><div>Two</div></body></html>";
        assert_eq!(
            readable(html),
            "T\nHello & welcome\nOne line <here> é世\nTwo"
        );
        assert_eq!(decode_entities("a &bogus; b & c"), "a &bogus; b & c");
        assert_eq!(readable("a<SCRIPT>x</Script >b<StYlE>y</STYLE>c"), "a b c");
    }

    #[test]
    fn many_scripts_cost_one_pass_each() {
        // 64k script tags: lowering the rest per tag took minutes.
        let page = "<script></script>x".repeat(1 << 16);
        let text = readable(&page);
        assert_eq!(text.split_whitespace().count(), 1 << 16);
    }

    #[test]
    fn redirect_locations_are_read_against_the_url() {
        let base = "https://example.org/docs/a/page.html?x=1";
        for (location, expected) in [
            ("http://other.net/x", "http://other.net/x"),
            ("//cdn.example.org/y", "https://cdn.example.org/y"),
            ("/root", "https://example.org/root"),
            ("next.html", "https://example.org/docs/a/next.html"),
            ("?page=2", "https://example.org/docs/a/page.html?page=2"),
        ] {
            assert_eq!(joined(base, location), expected, "{location}");
        }
        assert_eq!(joined("http://h:8080", "a"), "http://h:8080/a");
    }
}
