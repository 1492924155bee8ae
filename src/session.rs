//! Conversations kept on disk, one JSONL file per session.
//!
//! `<home>/sessions/<name>.jsonl` holds a metadata line, then one line per
//! message, shaped as [`crate::record`] says. The name is the key, encoded
//! so that names never differ only in case (`session/names.rs`). Files are
//! only ever appended to, a whole turn in one write under a lock
//! (`session/lock.rs`), so a crash can at worst leave a torn last line.
//! Loading keeps every whole line, reports the ones it skipped, and never
//! rewrites the file. Files are private to their owner where the OS has
//! permissions (`session/file.rs`).

pub(crate) mod file;
mod lock;
mod names;
mod tail;

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::home::Home;
use crate::json::{self, object, Json};
use crate::record;

pub use crate::conversation::{Message, Role};

use names::Place;
pub use names::{file_stem, MAX_KEY_BYTES};

/// A line longer than this is skipped rather than parsed.
pub const MAX_LINE_BYTES: usize = 16 << 20;
/// The most a turn reads from the end of a session file.
pub const MAX_TAIL_BYTES: usize = 64 << 20;
/// The format version written in the metadata line.
const FORMAT: u64 = 1;

/// A session as loaded from disk.
#[derive(Debug, Default)]
pub struct Session {
    pub key: String,
    pub messages: Vec<Message>,
    /// Lines that were not whole messages, left in the file untouched.
    pub skipped: Vec<Skipped>,
    /// Whether the file exists yet.
    pub exists: bool,
}

/// A line the loader could not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// 1-based line number.
    pub line: usize,
    pub reason: String,
}

/// One line of `weft sessions list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub key: String,
    pub messages: usize,
    pub updated: String,
}

/// The sessions directory of one home.
pub struct Sessions<'h> {
    home: &'h Home,
}

impl<'h> Sessions<'h> {
    pub fn new(home: &'h Home) -> Sessions<'h> {
        Sessions { home }
    }

    /// The session's file, if it has one. A link is refused later, when it
    /// is opened (see [`not_a_link`]).
    fn existing(&self, key: &str) -> Result<Option<PathBuf>, Error> {
        match names::locate(&self.home.sessions_dir()?, key)? {
            Place::Found(path) => Ok(Some(path)),
            Place::New(_) => Ok(None),
        }
    }

    /// Loads a whole session; one that was never written is empty. Memory
    /// grows with the file: a turn uses [`Sessions::load_recent`] instead.
    pub fn load(&self, key: &str) -> Result<Session, Error> {
        let mut session = Session {
            key: key.to_owned(),
            ..Session::default()
        };
        session.exists = self.scan(key, |entry| match entry {
            Ok(message) => session.messages.push(message),
            Err(skipped) => session.skipped.push(skipped),
        })?;
        Ok(session)
    }

    /// Loads the last `keep` messages (fewer if the session has fewer),
    /// reading the file backwards from its end: a turn costs the same in a
    /// session of ten messages or a hundred thousand, however long the
    /// messages before those are, and memory is bounded by `keep`. Lines
    /// that are not messages are read past and reported, not counted.
    pub fn load_recent(&self, key: &str, keep: usize) -> Result<Session, Error> {
        let mut session = Session {
            key: key.to_owned(),
            ..Session::default()
        };
        let Some(path) = self.existing(key)? else {
            return Ok(session);
        };
        let Some(mut file) = open_existing(&path)? else {
            return Ok(session);
        };
        session.exists = true;
        let io = |e| Error::io(path.display(), e);

        // Batches of parsed lines, the latest first.
        let mut batches = Vec::new();
        let mut tail = tail::Tail::new(&mut file).map_err(io)?;
        let mut found = 0;
        while found < keep {
            let lines = tail.earlier(keep - found).map_err(io)?;
            if lines.is_empty() {
                break;
            }
            let batch: Vec<_> = lines.into_iter().map(|line| line.parse(0)).collect();
            found += batch.iter().filter(|e| matches!(e, Ok(Some(_)))).count();
            batches.push(batch);
        }
        let start = tail.start();

        let mut first_number = None; // counted only if a line must be named
        for (i, entry) in batches.into_iter().rev().flatten().enumerate() {
            match entry {
                Ok(Some(message)) => session.messages.push(message),
                Ok(None) => {}
                Err(mut skipped) => {
                    if first_number.is_none() {
                        let before = count_newlines(&mut file, start).map_err(io)?;
                        first_number = Some(before + 1);
                    }
                    skipped.line = first_number.unwrap_or(1) + i;
                    session.skipped.push(skipped);
                }
            }
        }
        Ok(session)
    }

    /// Visits every message and every skipped line in order, holding one line
    /// at a time. Returns whether the session exists.
    pub fn scan(
        &self,
        key: &str,
        mut visit: impl FnMut(Result<Message, Skipped>),
    ) -> Result<bool, Error> {
        match self.existing(key)? {
            Some(path) => scan_file(&path, &mut visit),
            None => Ok(false),
        }
    }

    /// Appends messages (a whole turn) in a single write under a lock,
    /// creating the file with its metadata line first if it is new. Earlier
    /// lines are never touched.
    pub fn append(&self, key: &str, messages: &[Message]) -> Result<(), Error> {
        let dir = self.home.sessions_dir()?;
        let place = names::locate(&dir, key)?;
        file::create_private_dir(&dir).map_err(|e| Error::io(dir.display(), e))?;
        let path = match place {
            Place::Found(path) => path,
            Place::New(path) => {
                names::make_room(&dir, &path)?;
                path
            }
        };
        let shown = path.display();
        let io = |e| Error::io(&shown, e);
        not_a_link(&path)?;

        let mut file = file::Writable::append_to(&path).map_err(io)?;
        let _held = lock::lock(&file, &path).map_err(io)?;
        let mut out = Vec::new();
        let len = file.len().map_err(io)?;
        if len == 0 {
            let meta = object([
                ("_type", "metadata".into()),
                ("key", key.into()),
                ("created_at", crate::time::now().into()),
                ("format", FORMAT.into()),
            ]);
            out.extend_from_slice(meta.to_text().as_bytes());
            out.push(b'\n');
        } else if file.byte_at(len - 1).map_err(io)? != b'\n' {
            out.push(b'\n'); // keep a torn last line on a line of its own
        }
        for line in messages.iter().flat_map(record::to_lines) {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        file.append(&out).map_err(io)?;
        match file.sync_data() {
            Err(e) if e.kind() != io::ErrorKind::Unsupported => return Err(io(e)),
            _ => {}
        }
        if len == 0 {
            // Make the new name durable too, where directories can be synced.
            let _ = File::open(&dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    /// Every session, sorted by key, and the files that could not be read.
    pub fn list(&self) -> Result<Listing, Error> {
        let dir = self.home.sessions_dir()?;
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Listing::default()),
            Err(e) => return Err(Error::io(dir.display(), e)),
        };
        let mut found = std::collections::BTreeMap::new();
        let mut unreadable = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(dir.display(), e))?;
            let name = entry.file_name();
            let Some((key, _)) = name.to_str().and_then(names::decode) else {
                continue;
            };
            // Once per key: the file every other command uses for it.
            let path = match self.existing(&key) {
                Ok(Some(path)) if path.file_name() == Some(name.as_os_str()) => path,
                _ => continue,
            };
            let mut messages = 0;
            if let Err(err) = scan_file(&path, &mut |entry| messages += usize::from(entry.is_ok()))
            {
                unreadable.push((key, err.to_string()));
                continue;
            }
            let updated = entry
                .metadata()
                .and_then(|m| m.modified())
                .map(crate::time::rfc3339)
                .unwrap_or_default();
            let summary = Summary {
                key: key.clone(),
                messages,
                updated,
            };
            found.insert(key, summary);
        }
        Ok(Listing {
            sessions: found.into_values().collect(),
            unreadable,
        })
    }

    /// Deletes a session's file (a link is removed itself, never its
    /// target), and the file an earlier version named for it, if any.
    pub fn remove(&self, key: &str) -> Result<(), Error> {
        let files = names::files(&self.home.sessions_dir()?, key)?;
        if files.is_empty() {
            return Err(Error::NoSuchSession(key.to_owned()));
        }
        for path in files {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(Error::io(path.display(), e))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// What `weft sessions list` shows.
#[derive(Debug, Default)]
pub struct Listing {
    pub sessions: Vec<Summary>,
    /// Session files that could not be read, with why.
    pub unreadable: Vec<(String, String)>,
}

/// Opens a session file for reading, or `None` if there is none. A link is
/// refused: whatever it points to is not a session clawft wrote.
fn open_existing(path: &std::path::Path) -> Result<Option<File>, Error> {
    not_a_link(path)?;
    match File::open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path.display(), e)),
    }
}

fn not_a_link(path: &std::path::Path) -> Result<(), Error> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(Error::Sandbox {
            path: path.display().to_string(),
            reason: "a session file may not be a symbolic link",
        }),
        _ => Ok(()),
    }
}

/// How many lines end before byte `end` (read only to name a bad line).
fn count_newlines(file: &mut File, end: u64) -> io::Result<usize> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(file.take(end));
    let mut count = 0;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(count);
        }
        count += chunk.iter().filter(|&&b| b == b'\n').count();
        let n = chunk.len();
        reader.consume(n);
    }
}

/// Parses file contents into whole messages and the lines it had to skip.
pub fn parse(bytes: &[u8]) -> (Vec<Message>, Vec<Skipped>) {
    let mut messages = Vec::new();
    let mut skipped = Vec::new();
    read_entries(bytes, |entry| match entry {
        Ok(message) => messages.push(message),
        Err(skip) => skipped.push(skip),
    })
    .expect("reading from memory cannot fail");
    (messages, skipped)
}

/// Visits every message and every skipped line of a session's text, in
/// order; metadata and blank lines are passed over.
/// [`Sessions::scan`] of a file already found. One copy of the line reader
/// serves every caller, whatever it does with the lines.
fn scan_file(path: &Path, visit: &mut dyn FnMut(Result<Message, Skipped>)) -> Result<bool, Error> {
    let Some(file) = open_existing(path)? else {
        return Ok(false);
    };
    read_entries(BufReader::new(file), visit).map_err(|e| Error::io(path.display(), e))?;
    Ok(true)
}

fn read_entries(
    reader: impl BufRead,
    mut visit: impl FnMut(Result<Message, Skipped>),
) -> io::Result<()> {
    read_lines(reader, |number, line| {
        if let Some(entry) = line.parse(number).transpose() {
            visit(entry);
        }
    })
}

/// One raw line of a session file, as read.
enum Line {
    /// A line that ends in `\n`.
    Whole(Vec<u8>),
    /// The last line of the file, without `\n`: a write that did not finish.
    Torn(Vec<u8>),
    /// Longer than [`MAX_LINE_BYTES`]; its bytes were not kept.
    TooLong,
}

impl Line {
    /// A message, nothing (metadata or blank), or why the line is skipped.
    fn parse(self, number: usize) -> Result<Option<Message>, Skipped> {
        let skip = |reason: &str| Skipped {
            line: number,
            reason: reason.to_owned(),
        };
        let (raw, torn) = match &self {
            Line::Whole(raw) => (raw, false),
            Line::Torn(raw) => (raw, true),
            Line::TooLong => return Err(skip("longer than the line limit")),
        };
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let record = match json::parse(raw) {
            Ok(record) => record,
            Err(_) if torn => return Err(skip("truncated: the write of this line did not finish")),
            Err(_) => return Err(skip("not valid JSON")),
        };
        if record.get("_type").and_then(Json::as_str) == Some("metadata") {
            return Ok(None);
        }
        record::from_json(&record).map(Some).map_err(skip)
    }
}

/// Splits a session file into numbered lines, never holding more than
/// [`MAX_LINE_BYTES`] of one line.
fn read_lines(mut reader: impl BufRead, mut each: impl FnMut(usize, Line)) -> io::Result<()> {
    let mut number = 0;
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            if too_long || !line.is_empty() {
                number += 1;
                each(
                    number,
                    if too_long {
                        Line::TooLong
                    } else {
                        Line::Torn(line)
                    },
                );
            }
            return Ok(());
        }
        let (piece, ends) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        if !too_long && line.len() + piece.len() > MAX_LINE_BYTES {
            too_long = true;
            line = Vec::new();
        }
        if !too_long {
            line.extend_from_slice(piece);
        }
        let used = ends.unwrap_or(chunk.len());
        reader.consume(used);
        if ends.is_some() {
            number += 1;
            let done = std::mem::take(&mut line);
            each(
                number,
                if too_long {
                    Line::TooLong
                } else {
                    Line::Whole(done)
                },
            );
            too_long = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::home::HomeSource;
    use std::fs::OpenOptions;
    use std::io::Write;

    fn home() -> (tempfile::TempDir, Home) {
        let dir = crate::test_support::scratch();
        let home = Home::at(dir.path(), HomeSource::ClawftHome);
        (dir, home)
    }

    #[test]
    fn turns_append_and_load_back() {
        let (dir, home) = home();
        let store = Sessions::new(&home);
        assert!(!store.load("work").unwrap().exists);

        let turn1 = [
            Message::text(Role::User, "hi"),
            Message::text(Role::Assistant, "hello"),
        ];
        let turn2 = [Message::text(Role::User, "line\nbreak \"quoted\"")];
        store.append("work", &turn1).unwrap();
        store.append("work", &turn2).unwrap();

        let session = store.load("work").unwrap();
        assert!(session.exists);
        assert!(session.skipped.is_empty());
        assert_eq!(session.messages, [&turn1[..], &turn2[..]].concat());

        let text = fs::read_to_string(dir.path().join("sessions/work.jsonl")).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["_type"], "metadata");
        assert_eq!(first["key"], "work");
        assert_eq!(text.lines().count(), 4);

        let list = store.list().unwrap().sessions;
        assert_eq!(list.len(), 1);
        assert_eq!((list[0].key.as_str(), list[0].messages), ("work", 3));

        store.remove("work").unwrap();
        assert!(matches!(store.remove("work"), Err(Error::NoSuchSession(_))));
        assert!(store.list().unwrap().sessions.is_empty());
    }

    #[test]
    fn a_torn_last_line_is_skipped_reported_and_kept() {
        let (dir, home) = home();
        let store = Sessions::new(&home);
        store
            .append(
                "s",
                &[
                    Message::text(Role::User, "one"),
                    Message::text(Role::Assistant, "two"),
                ],
            )
            .unwrap();
        let path = dir.path().join("sessions/s.jsonl");
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"role":"user","content":"thr"#).unwrap();

        let session = store.load("s").unwrap();
        assert_eq!(session.messages.len(), 2);
        assert_eq!(session.skipped.len(), 1);
        assert_eq!(session.skipped[0].line, 4);
        assert!(session.skipped[0].reason.starts_with("truncated"));

        // The next turn goes on a fresh line; the torn line stays as it was.
        store
            .append("s", &[Message::text(Role::User, "four")])
            .unwrap();
        let session = store.load("s").unwrap();
        let contents: Vec<_> = session.messages.iter().map(|m| m.joined_text()).collect();
        assert_eq!(contents, ["one", "two", "four"]);
        assert_eq!(session.skipped[0].reason, "not valid JSON");
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\n{\"role\":\"user\",\"content\":\"thr\n"));
    }

    #[test]
    fn foreign_and_garbled_lines_are_named() {
        let input = b"{\"_type\":\"metadata\",\"created_at\":\"x\"}\n\
            {\"role\":\"user\",\"content\":\"a\"}\n\
            garbage\n\
            {\"role\":\"tool\",\"content\":\"x\"}\n\
            \n\
            {\"role\":\"assistant\",\"content\":\"b\",\"timestamp\":\"t\"}\n";
        let (messages, skipped) = parse(input);
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[1].timestamp, "t");
        assert_eq!(
            skipped,
            vec![
                Skipped {
                    line: 3,
                    reason: "not valid JSON".into()
                },
                Skipped {
                    line: 4,
                    reason: "a tool result without its tool_call_id".into()
                },
            ]
        );
    }

    #[test]
    fn a_turn_loads_only_the_recent_lines() {
        let (dir, home) = home();
        let store = Sessions::new(&home);
        for i in 0..100 {
            store
                .append("long", &[Message::text(Role::User, i.to_string())])
                .unwrap();
        }
        // A garbled line far back is never even parsed for a turn...
        let path = dir.path().join("sessions/long.jsonl");
        let mut text = fs::read_to_string(&path).unwrap();
        text.insert_str(text.find('\n').unwrap() + 1, "garbage\n");
        fs::write(&path, text).unwrap();
        let recent = store.load_recent("long", 4).unwrap();
        let tail: Vec<_> = recent.messages.iter().map(|m| m.joined_text()).collect();
        assert_eq!(&tail[tail.len() - 4..], ["96", "97", "98", "99"]);
        assert!(tail.len() <= 12 && recent.skipped.is_empty());
        // ...but a full load names it, by its line number.
        let all = store.load("long").unwrap();
        assert_eq!(all.messages.len(), 100);
        assert_eq!(
            all.skipped,
            vec![Skipped {
                line: 2,
                reason: "not valid JSON".into()
            }]
        );
        assert!(store.load_recent("long", 0).unwrap().messages.is_empty());
        // Asking for more than there is gives everything, bad line named.
        let more = store.load_recent("long", 1000).unwrap();
        assert_eq!((more.messages.len(), &more.skipped), (100, &all.skipped));
    }

    #[test]
    fn the_tail_names_bad_lines_by_their_number_in_the_file() {
        let (dir, home) = home();
        let store = Sessions::new(&home);
        for i in 0..50 {
            store
                .append("t", &[Message::text(Role::User, i.to_string())])
                .unwrap();
        }
        let path = dir.path().join("sessions/t.jsonl");
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"not json\n{\"role\":\"user\",\"content\":\"49b\"}\n{\"ro")
            .unwrap();
        let recent = store.load_recent("t", 3).unwrap();
        // Line 1 is metadata, 2..=51 the messages, 52 garbage, 53 a message, 54 torn.
        let lines: Vec<_> = recent
            .skipped
            .iter()
            .map(|s| (s.line, s.reason.as_str()))
            .collect();
        assert_eq!(
            lines,
            [
                (52, "not valid JSON"),
                (54, "truncated: the write of this line did not finish")
            ]
        );
        let contents: Vec<_> = recent.messages.iter().map(|m| m.joined_text()).collect();
        assert_eq!(contents, ["48", "49", "49b"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_session_file_that_is_a_link_is_refused_and_rm_removes_only_the_link() {
        // Found in review: rm deleted the link's target, outside sessions/.
        let (dir, home) = home();
        let store = Sessions::new(&home);
        store
            .append("real", &[Message::text(Role::User, "x")])
            .unwrap();
        let target = dir.path().join("archive.jsonl");
        fs::copy(dir.path().join("sessions/real.jsonl"), &target).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("sessions/alias.jsonl")).unwrap();
        assert!(matches!(
            store.load_recent("alias", 5),
            Err(Error::Sandbox { .. })
        ));
        assert!(matches!(
            store.append("alias", &[]),
            Err(Error::Sandbox { .. })
        ));
        let listing = store.list().unwrap();
        assert_eq!(listing.sessions.len(), 1);
        assert_eq!(listing.unreadable.len(), 1);
        store.remove("alias").unwrap();
        assert!(target.exists(), "the target must survive");
        assert!(!dir.path().join("sessions/alias.jsonl").exists());
    }

    #[test]
    fn an_overlong_line_is_skipped_without_being_held() {
        let mut input = b"{\"role\":\"user\",\"content\":\"a\"}\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 10));
        input.extend_from_slice(b"\n{\"role\":\"assistant\",\"content\":\"b\"}\n");
        let (messages, skipped) = parse(&input);
        assert_eq!(messages.len(), 2);
        assert_eq!(
            skipped,
            vec![Skipped {
                line: 2,
                reason: "longer than the line limit".into()
            }]
        );
    }

    #[test]
    fn keys_that_would_escape_never_touch_the_disk() {
        let (_dir, home) = home();
        let store = Sessions::new(&home);
        for bad in ["../x", "/etc/passwd", "a\\b"] {
            assert!(store
                .append(bad, &[Message::text(Role::User, "x")])
                .is_err());
            assert!(store.load(bad).is_err());
        }
    }

    /// Counts the bytes allocated by the current thread, to see how much a
    /// load copies without timing it.
    struct Counting;

    thread_local! {
        static ALLOCATED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    fn count(bytes: usize) {
        let _ = ALLOCATED.try_with(|n| n.set(n.get() + bytes as u64));
    }

    unsafe impl std::alloc::GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
            count(layout.size());
            std::alloc::System.alloc(layout)
        }
        unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
            count(layout.size());
            std::alloc::System.alloc_zeroed(layout)
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
            count(new);
            std::alloc::System.realloc(ptr, layout, new)
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
            std::alloc::System.dealloc(ptr, layout)
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, u64) {
        let before = ALLOCATED.with(|n| n.get());
        let value = f();
        (value, ALLOCATED.with(|n| n.get()) - before)
    }

    /// A session of `big` messages of `size` bytes, then `small` short ones.
    fn write_big_session(path: &std::path::Path, big: usize, size: usize, small: usize) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut text = String::from("{\"_type\":\"metadata\",\"key\":\"big\"}\n");
        for i in 0..big {
            let content = format!("{i} {}", "x".repeat(size));
            text.push_str(&record::to_lines(&Message::text(Role::User, content))[0]);
            text.push('\n');
        }
        for i in 0..small {
            text.push_str(&record::to_lines(&Message::text(Role::User, format!("small {i}")))[0]);
            text.push('\n');
        }
        fs::write(path, text).unwrap();
    }

    #[test]
    fn loading_a_tail_of_large_messages_copies_each_byte_a_few_times() {
        // Found in review: each 64 KiB block read was prepended to all the
        // bytes read before it, so 60 x 1 MiB took 17-26 s for one turn.
        let (dir, home) = home();
        let path = dir.path().join("sessions/big.jsonl");
        write_big_session(&path, 16, 512 << 10, 0);
        let size = fs::metadata(&path).unwrap().len();
        let store = Sessions::new(&home);
        let (recent, allocated) = allocated_by(|| store.load_recent("big", 16).unwrap());
        assert_eq!(recent.messages.len(), 16);
        assert!(recent.messages[15].joined_text().starts_with("15 x"));
        // Read once, split into lines, parsed, the text copied out: a few
        // times the tail, never the square of its blocks.
        assert!(
            allocated < 12 * size,
            "allocated {allocated} bytes to load a tail of {size}"
        );
    }

    #[test]
    fn history_beyond_the_window_is_not_read() {
        let (dir, home) = home();
        let path = dir.path().join("sessions/big.jsonl");
        write_big_session(&path, 60, 256 << 10, 50);
        let store = Sessions::new(&home);
        let (recent, allocated) = allocated_by(|| store.load_recent("big", 50).unwrap());
        let contents: Vec<_> = recent.messages.iter().map(|m| m.joined_text()).collect();
        assert_eq!(contents.len(), 50);
        assert_eq!(
            (contents[0].as_str(), contents[49].as_str()),
            ("small 0", "small 49")
        );
        assert!(
            allocated < 1 << 20,
            "allocated {allocated} bytes for 50 short messages"
        );
    }

    #[cfg(unix)]
    fn mode(path: &std::path::Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn sessions_are_private_to_their_owner() {
        // Found in review: 0644 files in a 0755 directory under umask 022.
        let dir = crate::test_support::scratch();
        let home = Home::at(dir.path().join("home"), HomeSource::ClawftHome);
        let store = Sessions::new(&home);
        store
            .append("s", &[Message::text(Role::User, "my key is ...")])
            .unwrap();
        assert_eq!(mode(&dir.path().join("home")), 0o700, "home, made here");
        assert_eq!(mode(&dir.path().join("home/sessions")), 0o700);
        assert_eq!(mode(&dir.path().join("home/sessions/s.jsonl")), 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn an_open_session_from_an_earlier_version_still_works_and_is_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, home) = home();
        let store = Sessions::new(&home);
        let sessions = dir.path().join("sessions");
        let path = sessions.join("old.jsonl");
        fs::create_dir(&sessions).unwrap();
        fs::write(&path, "{\"role\":\"user\",\"content\":\"before\"}\n").unwrap();
        fs::set_permissions(&sessions, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(store.load("old").unwrap().messages.len(), 1);
        store
            .append("old", &[Message::text(Role::User, "after")])
            .unwrap();
        assert_eq!(store.load("old").unwrap().messages.len(), 2);
        assert_eq!((mode(&sessions), mode(&path)), (0o700, 0o600));
    }

    #[test]
    fn a_session_named_by_an_earlier_version_keeps_working() {
        // Earlier versions kept upper-case letters: "Work" was Work.jsonl.
        let (dir, home) = home();
        let store = Sessions::new(&home);
        let sessions = dir.path().join("sessions");
        fs::create_dir(&sessions).unwrap();
        let old = sessions.join("Work.jsonl");
        fs::write(&old, "{\"role\":\"user\",\"content\":\"from before\"}\n").unwrap();

        assert_eq!(
            store.load("Work").unwrap().messages[0].joined_text(),
            "from before"
        );
        assert_eq!(store.load_recent("Work", 5).unwrap().messages.len(), 1);
        assert!(
            !store.load("work").unwrap().exists,
            "work is another session"
        );
        store
            .append("Work", &[Message::text(Role::Assistant, "and now")])
            .unwrap();
        store
            .append("work", &[Message::text(Role::User, "lower")])
            .unwrap();
        assert_eq!(store.load("Work").unwrap().messages.len(), 2);
        assert!(!sessions.join("%57ork.jsonl").exists(), "appended in place");

        let listed: Vec<_> = store
            .list()
            .unwrap()
            .sessions
            .into_iter()
            .map(|s| (s.key, s.messages))
            .collect();
        assert_eq!(listed, [("Work".to_owned(), 2), ("work".to_owned(), 1)]);

        // A session made today under the same key is the one used; both go with rm.
        fs::write(
            sessions.join("%57ork.jsonl"),
            "{\"role\":\"user\",\"content\":\"new\"}\n",
        )
        .unwrap();
        assert_eq!(store.load("Work").unwrap().messages[0].joined_text(), "new");
        assert_eq!(store.list().unwrap().sessions.len(), 2, "each key once");
        store.remove("Work").unwrap();
        assert!(!old.exists() && !sessions.join("%57ork.jsonl").exists());
        assert!(matches!(store.remove("Work"), Err(Error::NoSuchSession(_))));
        assert_eq!(store.load("work").unwrap().messages.len(), 1);
    }

    #[test]
    fn keys_that_differ_in_case_are_different_sessions() {
        let (dir, home) = home();
        let store = Sessions::new(&home);
        store
            .append("Work", &[Message::text(Role::User, "upper")])
            .unwrap();
        store
            .append("work", &[Message::text(Role::User, "lower")])
            .unwrap();
        assert_eq!(
            store.load("Work").unwrap().messages[0].joined_text(),
            "upper"
        );
        assert_eq!(
            store.load("work").unwrap().messages[0].joined_text(),
            "lower"
        );
        let mut names: Vec<_> = fs::read_dir(dir.path().join("sessions"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["%57ork.jsonl", "work.jsonl"]);
    }
}
