//! The file tools: read, write, edit, list and search, all inside the
//! workspace. Every path goes through [`crate::sandbox::resolve`]; an
//! absolute path is accepted only when it names a place inside the
//! workspace (models like to repeat the paths they were shown).

use std::fs;
#[cfg(not(all(target_os = "wasi", target_env = "p2")))]
use std::io::Write;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{size, Args, Kind, Param, Spec};
use crate::sandbox;

/// The largest file `read_file`, `edit_file` and `search` will read.
pub const MAX_READ_BYTES: u64 = 1 << 20;
/// The largest content `write_file` writes.
pub const MAX_WRITE_BYTES: usize = 1 << 20;
/// The most entries `list_dir` shows.
pub const MAX_ENTRIES: usize = 500;
/// The most names `list_dir` reads to sort before it shows the first.
const MAX_LISTED: usize = 20_000;
/// The most matching lines `search` reports.
pub const MAX_MATCHES: usize = 200;
/// The most files `search` looks into.
pub const MAX_SEARCHED_FILES: usize = 5_000;

const PATH: Param = Param {
    name: "path",
    kind: Kind::String,
    required: true,
    doc: "A path relative to the workspace.",
};

pub const SPECS: [Spec; 5] = [
    Spec {
        name: "read_file",
        description: "Read a text file in the workspace, optionally only some of its lines.",
        params: &[
            PATH,
            Param {
                name: "start_line",
                kind: Kind::Integer,
                required: false,
                doc: "The first line to read, counting from 1.",
            },
            Param {
                name: "end_line",
                kind: Kind::Integer,
                required: false,
                doc: "The last line to read (inclusive).",
            },
        ],
    },
    Spec {
        name: "write_file",
        description: "Create or replace a file in the workspace with the given text; \
                      missing parent directories are created.",
        params: &[
            PATH,
            Param {
                name: "content",
                kind: Kind::String,
                required: true,
                doc: "The whole new text of the file.",
            },
        ],
    },
    Spec {
        name: "edit_file",
        description: "Replace one exact occurrence of a piece of text in a file. The text \
                      must occur exactly once; include surrounding lines to make it unique.",
        params: &[
            PATH,
            Param {
                name: "old_text",
                kind: Kind::String,
                required: true,
                doc: "The exact text to replace, as it is in the file.",
            },
            Param {
                name: "new_text",
                kind: Kind::String,
                required: true,
                doc: "The text to put in its place.",
            },
        ],
    },
    Spec {
        name: "list_dir",
        description: "List a directory of the workspace: each entry with its kind and size.",
        params: &[Param {
            name: "path",
            kind: Kind::String,
            required: false,
            doc: "A directory relative to the workspace; the workspace itself if left out.",
        }],
    },
    Spec {
        name: "search",
        description: "Find lines containing a piece of text in the files under a directory \
                      of the workspace. `*` in the pattern matches any run of characters.",
        params: &[
            Param {
                name: "pattern",
                kind: Kind::String,
                required: true,
                doc: "The text to look for.",
            },
            Param {
                name: "path",
                kind: Kind::String,
                required: false,
                doc: "The directory (or file) to search; the whole workspace if left out.",
            },
            Param {
                name: "ignore_case",
                kind: Kind::Boolean,
                required: false,
                doc: "Match upper and lower case ASCII letters alike.",
            },
        ],
    },
];

/// The directory the tools may touch, and the gate into it.
pub struct Workspace<'a> {
    root: &'a Path,
    /// The clawft home, when it lies inside the workspace (a workspace of
    /// `~`): its config holds the keys, so the tools may not touch it.
    home: Option<PathBuf>,
}

impl<'a> Workspace<'a> {
    pub fn new(root: &'a Path, home: &Path) -> Workspace<'a> {
        let (root_real, home_real) = (real(root), real(home));
        // A workspace inside the home (the default, `<home>/workspace`) is
        // fine; one that contains the home, or is it, is kept out of it.
        let home = within(&home_real, &root_real).then_some(home_real);
        Workspace { root, home }
    }

    /// The real path for what the model wrote, or why not.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, String> {
        let inside = |root: &Path| {
            Path::new(path)
                .strip_prefix(root)
                .ok()
                .and_then(Path::to_str)
                .map(str::to_owned)
        };
        // An absolute path inside the workspace, as written or as the OS
        // spells the workspace (through a link such as macOS's /tmp).
        let relative = if path.starts_with('/') {
            inside(self.root)
                .or_else(|| inside(&real(self.root)))
                .ok_or_else(|| {
                    format!(
                        "refused path '{path}': absolute paths outside the workspace are not \
                         allowed; use a path relative to the workspace"
                    )
                })?
        } else {
            path.to_owned()
        };
        let resolved = sandbox::resolve(self.root, &relative, &sandbox::WORKSPACE)
            .map_err(|e| e.to_string())?;
        if let Some(home) = &self.home {
            if within(&real(&resolved), home) || within(&resolved, home) {
                return Err(format!(
                    "refused path '{path}': it is inside the clawft home (its config and \
                     sessions), which the tools may not touch"
                ));
            }
        }
        Ok(resolved)
    }

    /// [`Workspace::resolve`] for a file to write: also not inside a `.git`
    /// directory, whose config and hooks run programs.
    fn resolve_for_writing(&self, path: &str) -> Result<PathBuf, String> {
        let resolved = self.resolve(path)?;
        let inside = resolved.as_os_str().as_encoded_bytes();
        let inside = inside
            .get(self.root.as_os_str().len()..)
            .unwrap_or_default();
        // Any case: on a case-insensitive filesystem `.GIT` is `.git`.
        let in_git = inside
            .split(|b| *b == b'/')
            .any(|name| name.eq_ignore_ascii_case(b".git"));
        if in_git {
            return Err(format!(
                "refused path '{path}': files inside .git may not be written (git runs what \
                 its config and hooks say)"
            ));
        }
        Ok(resolved)
    }
}

/// Makes sure the workspace exists: natively a missing one is created
/// private on first use, an existing one is left as it is. Under WASI a
/// workspace of `/` means every directory the host preopened, and only the
/// host decides what is reachable.
pub(super) fn ensure_workspace(root: &Path) -> Result<(), String> {
    if root.is_dir() || (cfg!(target_os = "wasi") && root == Path::new("/")) {
        return Ok(());
    }
    if cfg!(target_os = "wasi") {
        return Err(format!(
            "the workspace {} is not available: the host must preopen it \
             (wasmtime: --dir HOST_DIR::{})",
            root.display(),
            root.display()
        ));
    }
    crate::session::file::create_private_dir(root)
        .map_err(|e| format!("cannot create the workspace {}: {e}", root.display()))
}

/// Whether `path` is `dir` or lies inside it, by whole names (paths here
/// are absolute and normal, so bytes compare as well as components do).
fn within(path: &Path, dir: &Path) -> bool {
    let path = path.as_os_str().as_encoded_bytes();
    let dir = dir.as_os_str().as_encoded_bytes();
    let dir = dir.strip_suffix(b"/").unwrap_or(dir);
    path.starts_with(dir) && matches!(path.get(dir.len()), None | Some(b'/'))
}

/// A path with its links resolved, natively. Under WASI paths are the
/// host's preopens, which [`sandbox::resolve`] already walks link by link
/// (and realpath would only add code to the component).
fn real(path: &Path) -> PathBuf {
    // A file still to be created: its nearest existing ancestor, resolved,
    // and the rest as written.
    #[cfg(not(target_os = "wasi"))]
    for existing in path.ancestors() {
        if let Ok(real) = fs::canonicalize(existing) {
            return match path.strip_prefix(existing) {
                Ok(rest) if !rest.as_os_str().is_empty() => real.join(rest),
                _ => real,
            };
        }
    }
    path.to_owned()
}

/// Runs the file tool `name`; returns the content and a summary.
pub fn run(name: &str, workspace: &Workspace<'_>, args: &Args) -> Result<(String, String), String> {
    ensure_workspace(workspace.root)?;
    match name {
        "read_file" => read_file(workspace, args),
        "write_file" => write_file(workspace, args),
        "edit_file" => edit_file(workspace, args),
        "list_dir" => list_dir(workspace, args),
        "search" => search(workspace, args),
        other => Err(format!("there is no file tool named '{other}'")),
    }
}

/// What failed, in words that help the model (not an OS error code alone).
fn io_error(path: &str, err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::NotFound => format!("'{path}' does not exist"),
        io::ErrorKind::PermissionDenied => format!("'{path}' may not be accessed here"),
        _ => format!("'{path}': {err}"),
    }
}

/// A file's text, refusing directories, large files and binary content.
fn read_text(path: &Path, shown: &str) -> Result<String, String> {
    let meta = fs::metadata(path).map_err(|e| io_error(shown, &e))?;
    if meta.is_dir() {
        return Err(format!(
            "'{shown}' is a directory; use list_dir to see what it holds"
        ));
    }
    if !meta.is_file() {
        // A FIFO or a device would block or never end.
        return Err(format!("'{shown}' is not a regular file"));
    }
    if meta.len() > MAX_READ_BYTES {
        return Err(format!(
            "'{shown}' is {}, more than the {} limit",
            size(meta.len() as usize),
            size(MAX_READ_BYTES as usize)
        ));
    }
    read_checked(path, meta.len(), shown)
}

/// The text of a regular file already checked to be within the limit
/// (`len` is its size): refused when binary or not UTF-8.
fn read_checked(path: &Path, len: u64, shown: &str) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(len as usize);
    fs::File::open(path)
        .and_then(|f| f.take(MAX_READ_BYTES).read_to_end(&mut bytes))
        .map_err(|e| io_error(shown, &e))?;
    if bytes.contains(&0) {
        return Err(format!("'{shown}' is a binary file, not text"));
    }
    String::from_utf8(bytes).map_err(|_| format!("'{shown}' is not UTF-8 text"))
}

fn read_file(ws: &Workspace<'_>, args: &Args) -> Result<(String, String), String> {
    let shown: String = args.get("path")?;
    let path = ws.resolve(&shown)?;
    let text = read_text(&path, &shown)?;
    let start: Option<u64> = args.opt("start_line")?;
    let end: Option<u64> = args.opt("end_line")?;
    let content = if start.is_none() && end.is_none() {
        text
    } else {
        let first = start.unwrap_or(1).max(1);
        let last = end.unwrap_or(u64::MAX);
        if last < first {
            return Err(format!("end_line {last} is before start_line {first}"));
        }
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let count = lines.len() as u64;
        if first > count.max(1) {
            return Err(format!(
                "'{shown}' has {count} lines; start_line {first} is past its end"
            ));
        }
        // Both are within 1..=count here, so they fit a usize on wasm32 too.
        let (from, to) = (first - 1, last.min(count));
        lines[from as usize..to as usize].concat()
    };
    let summary = format!("{shown} -> {}", size(content.len()));
    Ok((content, summary))
}

fn write_file(ws: &Workspace<'_>, args: &Args) -> Result<(String, String), String> {
    let shown: String = args.get("path")?;
    let content: String = args.get("content")?;
    if content.len() > MAX_WRITE_BYTES {
        return Err(format!(
            "the content is {}, more than the {} limit",
            size(content.len()),
            size(MAX_WRITE_BYTES)
        ));
    }
    let path = ws.resolve_for_writing(&shown)?;
    if path.is_dir() {
        return Err(format!("'{shown}' is a directory"));
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| io_error(&shown, &e))?;
    }
    let existed = path.exists();
    replace(&path, content.as_bytes()).map_err(|e| io_error(&shown, &e))?;
    let verb = if existed { "replaced" } else { "created" };
    Ok((
        format!("{verb} '{shown}' ({} bytes)", content.len()),
        format!("{shown} <- {}", size(content.len())),
    ))
}

fn edit_file(ws: &Workspace<'_>, args: &Args) -> Result<(String, String), String> {
    let shown: String = args.get("path")?;
    let old: String = args.get("old_text")?;
    let new: String = args.get("new_text")?;
    if old.is_empty() {
        return Err("old_text is empty; give the exact text to replace".into());
    }
    let path = ws.resolve_for_writing(&shown)?;
    let text = read_text(&path, &shown)?;
    let count = text.matches(old.as_str()).count();
    match count {
        0 => Err(format!(
            "old_text does not occur in '{shown}'; read the file and copy the text exactly"
        )),
        1 => {
            let edited = text.replacen(old.as_str(), &new, 1);
            replace(&path, edited.as_bytes()).map_err(|e| io_error(&shown, &e))?;
            Ok((
                format!("edited '{shown}': replaced 1 occurrence"),
                format!("{shown} edited"),
            ))
        }
        n => Err(format!(
            "old_text occurs {n} times in '{shown}'; include more of the surrounding text \
             so that it occurs exactly once"
        )),
    }
}

fn list_dir(ws: &Workspace<'_>, args: &Args) -> Result<(String, String), String> {
    let shown = args.opt::<String>("path")?.unwrap_or_else(|| ".".into());
    let path = ws.resolve(&shown)?;
    // Names first (up to a bound), sorted, then the first MAX_ENTRIES
    // described: a big directory shows the start of its sorted listing.
    let mut names: Vec<String> = Vec::new();
    let read = fs::read_dir(&path).map_err(|e| io_error(&shown, &e))?;
    let mut total = 0;
    for entry in read {
        let entry = entry.map_err(|e| io_error(&shown, &e))?;
        total += 1;
        if names.len() < MAX_LISTED {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort_unstable();
    names.truncate(MAX_ENTRIES);
    let mut lines: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        let here = path.join(&name);
        let line = match fs::symlink_metadata(&here) {
            Ok(meta) if meta.file_type().is_symlink() => format!("{name} (link)\n"),
            Ok(meta) if meta.is_dir() => format!("{name}/ (dir)\n"),
            Ok(meta) => format!("{name} (file, {})\n", size(meta.len() as usize)),
            Err(_) => format!("{name} (unreadable)\n"),
        };
        lines.push(line);
    }
    lines.sort_unstable();
    let mut out = lines.concat();
    if total > lines.len() {
        out.push_str(&format!(
            "[cut: the first {} of {total} entries are shown]\n",
            lines.len()
        ));
    }
    if total == 0 {
        out.push_str("(empty)\n");
    }
    Ok((out, format!("{shown} -> {total} entries")))
}

fn search(ws: &Workspace<'_>, args: &Args) -> Result<(String, String), String> {
    let pattern: String = args.get("pattern")?;
    if pattern.is_empty() {
        return Err("the pattern is empty".into());
    }
    let shown = args.opt::<String>("path")?.unwrap_or_else(|| ".".into());
    let ignore_case = args.opt::<bool>("ignore_case")?.unwrap_or(false);
    let start = ws.resolve(&shown)?;
    let matcher = Pattern::new(&pattern, ignore_case);
    let mut found = Search {
        root: ws.root,
        home: ws.home.as_deref(),
        matcher,
        lines: Vec::new(),
        files: 0,
        more: false,
    };
    found.walk(&start, 0).map_err(|e| io_error(&shown, &e))?;
    let mut out = found.lines.join("\n");
    if found.lines.is_empty() {
        out = format!("no line matches '{pattern}'");
    } else if found.more {
        out.push_str(&format!(
            "\n[cut: stopped after {} matches or {} files; narrow the search]",
            found.lines.len(),
            found.files
        ));
    }
    let summary = format!("'{pattern}' in {shown} -> {} matches", found.lines.len());
    Ok((out, summary))
}

/// A search in progress.
struct Search<'a> {
    root: &'a Path,
    /// The clawft home, when inside the workspace: not searched.
    home: Option<&'a Path>,
    matcher: Pattern,
    lines: Vec<String>,
    files: usize,
    more: bool,
}

impl Search<'_> {
    /// Looks into `path`: a file's lines, or a directory's entries in name
    /// order. Links are not followed; hidden entries (`.git`) are skipped.
    fn walk(&mut self, path: &Path, depth: usize) -> io::Result<()> {
        if self.more {
            return Ok(());
        }
        let meta = fs::symlink_metadata(path)?;
        if meta.is_dir() {
            if depth > 32 || self.home.is_some_and(|home| within(&real(path), home)) {
                return Ok(());
            }
            // An unreadable directory is passed over, not the whole search.
            let Ok(entries) = fs::read_dir(path) else {
                return Ok(());
            };
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect();
            names.sort_unstable();
            for name in names {
                self.walk(&path.join(name), depth + 1)?;
            }
        } else if meta.is_file() && meta.len() <= MAX_READ_BYTES {
            self.files += 1;
            if self.files > MAX_SEARCHED_FILES {
                self.more = true;
                return Ok(());
            }
            let Ok(text) = read_checked(path, meta.len(), "") else {
                return Ok(()); // binary or unreadable: not searched
            };
            let shown = path
                .strip_prefix(self.root)
                .unwrap_or(path)
                .to_string_lossy()
                .into_owned();
            for (i, line) in text.lines().enumerate() {
                if self.matcher.matches(line) {
                    if self.lines.len() >= MAX_MATCHES {
                        self.more = true;
                        return Ok(());
                    }
                    let line = super::cap(line.trim_end(), 300);
                    self.lines.push(format!("{shown}:{}: {line}", i + 1));
                }
            }
        }
        Ok(())
    }
}

/// Literal text where `*` matches any run of characters; case is ignored
/// for ASCII letters only (Unicode case tables would cost the wasm build
/// about 11 KB).
struct Pattern {
    pieces: Vec<String>,
    ignore_case: bool,
}

impl Pattern {
    fn new(pattern: &str, ignore_case: bool) -> Pattern {
        let pattern = if ignore_case {
            pattern.to_ascii_lowercase()
        } else {
            pattern.to_owned()
        };
        Pattern {
            pieces: pattern.split('*').map(str::to_owned).collect(),
            ignore_case,
        }
    }

    fn matches(&self, line: &str) -> bool {
        let lowered;
        let mut rest = if self.ignore_case {
            lowered = line.to_ascii_lowercase();
            lowered.as_str()
        } else {
            line
        };
        for piece in &self.pieces {
            match rest.find(piece.as_str()) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

/// Replaces a file's contents: written to a new file beside it, then
/// renamed over it, so a crash leaves the old file or the new one, never
/// half of either. The new file has a name no one else uses; see
/// [`replace_via`].
fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(
        ".{name}.{nanos}-{}.clawft-tmp",
        COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    replace_via(path, &temp, bytes)
}

/// [`replace`] through `temp`, which is created exclusively (whatever is
/// there already, a planted link included, makes it fail rather than be
/// followed). Replacing a file, the new one is private while it is written
/// and then takes the old one's permissions. Where a host cannot rename,
/// the file is written in place.
fn replace_via(path: &Path, temp: &Path, bytes: &[u8]) -> io::Result<()> {
    let old = fs::metadata(path).ok();
    let result = write_new(temp, bytes, old.is_some()).and_then(|()| {
        #[cfg(unix)]
        if let Some(old) = &old {
            fs::set_permissions(temp, old.permissions())?;
        }
        fs::rename(temp, path)
    });
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = fs::remove_file(temp);
            if e.kind() == io::ErrorKind::Unsupported {
                fs::write(path, bytes)
            } else {
                Err(e)
            }
        }
    }
}

/// Writes a file that must not exist yet; `private`, readable by its owner
/// only (natively). Under WASI 0.2 through `wasi:filesystem` itself (see
/// `session::file`): some hosts refuse the flags std opens writable files
/// with.
fn write_new(path: &Path, bytes: &[u8], private: bool) -> io::Result<()> {
    #[cfg(all(target_os = "wasi", target_env = "p2"))]
    {
        let _ = private;
        let mut file = crate::session::file::Writable::create_new(path)?;
        file.append(bytes)
    }
    #[cfg(not(all(target_os = "wasi", target_env = "p2")))]
    {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if private {
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        options.open(path)?.write_all(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{tests::settings, Caller, Toolbox};
    use crate::conversation::ToolCall;
    use std::fs;

    fn run(tools: &Toolbox, name: &str, arguments: serde_json::Value) -> (bool, String) {
        let outcome = tools.run(&ToolCall {
            id: "c".into(),
            name: name.into(),
            arguments: arguments.to_string(),
        });
        (outcome.is_error, outcome.content)
    }

    #[test]
    fn read_write_edit_list_and_search_in_the_workspace() {
        let dir = crate::test_support::scratch();
        let tools = Toolbox::new(&settings(dir.path()), Caller::Cli);
        use serde_json::json;
        let (err, said) = run(
            &tools,
            "write_file",
            json!({"path": "notes/a.md", "content": "one\ntwo\nthree\n"}),
        );
        assert!(!err, "{said}");
        assert_eq!(
            fs::read_to_string(dir.path().join("notes/a.md")).unwrap(),
            "one\ntwo\nthree\n"
        );
        assert_eq!(
            run(&tools, "read_file", json!({"path": "notes/a.md"})),
            (false, "one\ntwo\nthree\n".into())
        );
        assert_eq!(
            run(
                &tools,
                "read_file",
                json!({"path": "notes/a.md", "start_line": 2, "end_line": 2})
            ),
            (false, "two\n".into())
        );
        let (err, said) = run(
            &tools,
            "edit_file",
            json!({"path": "notes/a.md", "old_text": "two", "new_text": "2"}),
        );
        assert!(!err, "{said}");
        assert_eq!(
            fs::read_to_string(dir.path().join("notes/a.md")).unwrap(),
            "one\n2\nthree\n"
        );
        let (err, said) = run(
            &tools,
            "edit_file",
            json!({"path": "notes/a.md", "old_text": "e", "new_text": "E"}),
        );
        assert!(err && said.contains("occurs 3 times"), "{said}");
        let (err, said) = run(
            &tools,
            "edit_file",
            json!({"path": "notes/a.md", "old_text": "four", "new_text": "4"}),
        );
        assert!(err && said.contains("does not occur"), "{said}");
        let (err, said) = run(&tools, "list_dir", json!({}));
        assert!(!err && said == "notes/ (dir)\n", "{said:?}");
        let (_, said) = run(&tools, "list_dir", json!({"path": "notes"}));
        assert_eq!(said, "a.md (file, 12 B)\n");
        let (err, said) = run(
            &tools,
            "search",
            json!({"pattern": "T*E", "ignore_case": true}),
        );
        assert!(!err, "{said}");
        assert_eq!(said, "notes/a.md:3: three");
        // Absolute paths inside the workspace are fine.
        let inside = dir.path().join("notes/a.md");
        let (err, _) = run(
            &tools,
            "read_file",
            json!({"path": inside.to_str().unwrap()}),
        );
        assert!(!err);
    }

    #[test]
    fn binary_missing_and_directory_paths_are_explained() {
        let dir = crate::test_support::scratch();
        let tools = Toolbox::new(&settings(dir.path()), Caller::Cli);
        fs::write(dir.path().join("blob"), b"\x00\x01\x02").unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        use serde_json::json;
        let (err, said) = run(&tools, "read_file", json!({"path": "blob"}));
        assert!(err && said.contains("binary"), "{said}");
        let (err, said) = run(&tools, "read_file", json!({"path": "nope.txt"}));
        assert!(err && said.contains("does not exist"), "{said}");
        let (err, said) = run(&tools, "read_file", json!({"path": "sub"}));
        assert!(err && said.contains("is a directory"), "{said}");
        let (err, said) = run(&tools, "write_file", json!({"path": "sub", "content": "x"}));
        assert!(err && said.contains("is a directory"), "{said}");
    }

    #[test]
    fn escapes_are_refused_and_the_outside_is_untouched() {
        let outer = crate::test_support::scratch();
        let ws = outer.path().join("ws");
        fs::create_dir(&ws).unwrap();
        let secret = outer.path().join("secret.txt");
        fs::write(&secret, "keep out").unwrap();
        let tools = Toolbox::new(&settings(&ws), Caller::Cli);
        use serde_json::json;
        let mut attempts = vec![
            json!({"path": "../secret.txt"}),
            json!({"path": secret.to_str().unwrap()}),
            json!({"path": "/etc/passwd"}),
            json!({"path": "a/../../secret.txt"}),
        ];
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&secret, ws.join("link")).unwrap();
            std::os::unix::fs::symlink(outer.path(), ws.join("up")).unwrap();
            attempts.push(json!({"path": "link"}));
            attempts.push(json!({"path": "up/secret.txt"}));
        }
        for args in attempts {
            for tool in ["read_file", "write_file", "edit_file"] {
                let mut args = args.clone();
                args["content"] = json!("pwned");
                args["old_text"] = json!("keep");
                args["new_text"] = json!("pwned");
                let (err, said) = run(&tools, tool, args.clone());
                assert!(err, "{tool} {args}: {said}");
                assert!(said.contains("refused path"), "{tool} {args}: {said}");
            }
        }
        assert_eq!(fs::read_to_string(&secret).unwrap(), "keep out");
        assert_eq!(fs::read_dir(outer.path()).unwrap().count(), 2);
    }

    #[test]
    fn huge_line_numbers_are_answered_not_trusted() {
        let dir = crate::test_support::scratch();
        let tools = Toolbox::new(&settings(dir.path()), Caller::Cli);
        fs::write(dir.path().join("a.txt"), "one\ntwo\n").unwrap();
        use serde_json::json;
        let (err, said) = run(
            &tools,
            "read_file",
            json!({"path": "a.txt", "start_line": 4294967296u64}),
        );
        assert!(err && said.contains("past its end"), "{said}");
        let (err, said) = run(
            &tools,
            "read_file",
            json!({"path": "a.txt", "start_line": 2, "end_line": 4294967296u64}),
        );
        assert_eq!((err, said.as_str()), (false, "two\n"));
    }

    #[test]
    fn git_internals_and_a_home_inside_the_workspace_are_off_limits() {
        let dir = crate::test_support::scratch();
        let mut s = settings(dir.path());
        s.home = dir.path().join("clawft-home");
        fs::create_dir(&s.home).unwrap();
        fs::write(s.home.join("config.json"), "{\"secret\": 1}").unwrap();
        fs::create_dir(dir.path().join(".git")).unwrap();
        let tools = Toolbox::new(&s, Caller::Cli);
        use serde_json::json;
        for path in ["clawft-home/config.json", "clawft-home/sessions/x.jsonl"] {
            let (err, said) = run(&tools, "read_file", json!({"path": path}));
            assert!(err && said.contains("clawft home"), "{said}");
            let (err, said) = run(&tools, "write_file", json!({"path": path, "content": "x"}));
            assert!(err && said.contains("clawft home"), "{said}");
        }
        let (_, said) = run(&tools, "search", json!({"pattern": "secret"}));
        assert_eq!(said, "no line matches 'secret'");
        for path in [".git/config", ".GIT/config", "sub/.Git/hooks/pre-commit"] {
            let (err, said) = run(
                &tools,
                "write_file",
                json!({"path": path, "content": "[core]\n"}),
            );
            assert!(err && said.contains(".git"), "{path}: {said}");
        }
        assert!(!dir.path().join(".git/config").exists());
        assert_eq!(
            fs::read_to_string(s.home.join("config.json")).unwrap(),
            "{\"secret\": 1}"
        );
        // A workspace that is the home itself is all off limits.
        let mut same = settings(&s.home);
        same.home = s.home.clone();
        let tools = Toolbox::new(&same, Caller::Cli);
        let (err, said) = run(&tools, "read_file", json!({"path": "config.json"}));
        assert!(err && said.contains("clawft home"), "{said}");
    }

    #[cfg(unix)]
    #[test]
    fn writes_keep_the_mode_and_never_follow_a_planted_temp_link() {
        use std::os::unix::fs::PermissionsExt;
        let outer = crate::test_support::scratch();
        let ws = outer.path().join("ws");
        fs::create_dir(&ws).unwrap();
        let victim = outer.path().join("victim.txt");
        fs::write(&victim, "precious").unwrap();
        for name in [
            "notes.md.clawft-tmp",
            ".notes.md.clawft-tmp",
            ".notes.md.0-0.clawft-tmp",
        ] {
            std::os::unix::fs::symlink(&victim, ws.join(name)).unwrap();
        }
        let tools = Toolbox::new(&settings(&ws), Caller::Cli);
        use serde_json::json;
        let (err, said) = run(
            &tools,
            "write_file",
            json!({"path": "notes.md", "content": "new"}),
        );
        assert!(!err, "{said}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(fs::read_to_string(ws.join("notes.md")).unwrap(), "new");

        let script = ws.join("run.sh");
        fs::write(&script, "echo hi\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o700)).unwrap();
        let (err, said) = run(
            &tools,
            "edit_file",
            json!({"path": "run.sh", "old_text": "hi", "new_text": "there"}),
        );
        assert!(!err, "{said}");
        let mode = fs::metadata(&script).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // No temp file is left behind: only the three planted links remain.
        let temps = fs::read_dir(&ws)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".clawft-tmp"))
            .count();
        assert_eq!(temps, 3);
    }

    #[cfg(unix)]
    #[test]
    fn a_link_planted_at_the_temp_name_is_never_followed() {
        let outer = crate::test_support::scratch();
        let victim = outer.path().join("victim.txt");
        fs::write(&victim, "precious").unwrap();
        let (path, temp) = (
            outer.path().join("notes.md"),
            outer.path().join("notes.tmp"),
        );
        std::os::unix::fs::symlink(&victim, &temp).unwrap();
        let err = super::replace_via(&path, &temp, b"pwned").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!path.exists());
    }

    #[cfg(all(unix, not(target_os = "wasi")))]
    #[test]
    fn a_fifo_is_refused_rather_than_waited_on() {
        let dir = crate::test_support::scratch();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            return; // no mkfifo on this machine
        }
        let tools = Toolbox::new(&settings(dir.path()), Caller::Cli);
        let (err, said) = run(&tools, "read_file", serde_json::json!({"path": "pipe"}));
        assert!(err && said.contains("not a regular file"), "{said}");
    }

    #[test]
    fn a_large_directory_shows_its_first_names_in_order() {
        let dir = crate::test_support::scratch();
        for i in (0..super::MAX_ENTRIES + 20).rev() {
            fs::write(dir.path().join(format!("f{i:04}")), "").unwrap();
        }
        let tools = Toolbox::new(&settings(dir.path()), Caller::Cli);
        let (err, said) = run(&tools, "list_dir", serde_json::json!({}));
        assert!(!err, "{said}");
        let lines: Vec<&str> = said.lines().collect();
        assert!(lines[0].starts_with("f0000 "), "{}", lines[0]);
        assert!(lines[499].starts_with("f0499 "), "{}", lines[499]);
        assert!(lines[500].contains("first 500 of 520"), "{}", lines[500]);
    }
}
