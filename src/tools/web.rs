//! `web_fetch`: one GET through the same HTTP seam the providers use, so it
//! works natively and, through `wasi:http`, in the wasip2 component. Text
//! only; HTML is turned into readable text.

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

pub fn run(settings: &ToolSettings, args: &Args) -> Result<(String, String), String> {
    let url: String = args.get("url")?;
    http::Url::parse(&url).map_err(|e| e.to_string())?;
    let request = Request {
        method: Method::Get,
        url: url.clone(),
        headers: vec![
            ("user-agent".into(), http::USER_AGENT.into()),
            (
                "accept".into(),
                "text/html, text/plain, application/json;q=0.9, */*;q=0.1".into(),
            ),
        ],
        body: Vec::new(),
        timeouts: Timeouts {
            connect: settings.web_timeout,
            response: settings.web_timeout,
        },
    };
    let mut response = http::send(&request).map_err(|e| e.to_string())?;
    if !(200..300).contains(&response.status) {
        return Err(format!("{url} answered HTTP {}", response.status));
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
        return Err(format!("{url} is {kind}, not text"));
    }
    let body = response
        .read_to_end(settings.web_max_bytes)
        .map_err(|e| match e {
            HttpError::TooLarge(limit) => format!("{url} is larger than {}", size(limit)),
            other => other.to_string(),
        })?;
    let text = String::from_utf8_lossy(&body);
    let text = if kind.contains("html") {
        readable(&text)
    } else {
        text.into_owned()
    };
    let summary = format!("{url} -> {}", size(text.len()));
    Ok((text, summary))
}

/// The readable text of an HTML page: scripts, styles and tags removed,
/// the common entities decoded, blank lines and runs of spaces dropped.
pub fn readable(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        rest = &rest[open..];
        let lower: String = rest
            .chars()
            .take(8)
            .collect::<String>()
            .to_ascii_lowercase();
        let skip_to = ["script", "style", "noscript"]
            .iter()
            .find(|tag| lower[1..].starts_with(*tag))
            .map(|tag| format!("</{tag}"));
        let end = match skip_to {
            Some(close) => {
                let lowered = rest.to_ascii_lowercase();
                lowered
                    .find(&close)
                    .and_then(|at| rest[at..].find('>').map(|gt| at + gt + 1))
            }
            None => rest.find('>').map(|gt| gt + 1),
        };
        let tag = &rest[..end.unwrap_or(rest.len())];
        let breaks = [
            "<p", "<br", "<div", "<li", "<h", "<tr", "</p", "</div", "</h",
        ]
        .iter()
        .any(|b| tag.to_ascii_lowercase().starts_with(b));
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

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let entity = rest
            .find(';')
            .filter(|&semi| semi <= 10)
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
    }
}
