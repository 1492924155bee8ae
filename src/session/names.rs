//! Session keys as file names, and finding the file of a key.
//!
//! A key's bytes stay as they are when they are lower-case ASCII letters,
//! digits, `-`, `_` or a `.` that does not start the name; every other byte,
//! upper-case letters included, becomes `%XX` (upper-case hex). Names
//! therefore never differ only in case, and two keys never share a file on
//! a filesystem that ignores case (macOS and Windows hosts, and WASI
//! preopens of them): `Work` is `%57ork.jsonl`, `work` is `work.jsonl`.
//!
//! Earlier versions kept upper-case letters as they are (`Work.jsonl`).
//! Such a file is still found, by its exact name, and keeps being used.
//! Where case is ignored, looking `Work.jsonl` up would also find
//! `work.jsonl`; whenever that can happen the directory's listing decides.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// The longest encoded session key (file names stay well under 255 bytes,
/// lock files included).
pub const MAX_KEY_BYTES: usize = 200;

/// The file name (without `.jsonl`) for a session key.
pub fn file_stem(key: &str) -> Result<String, Error> {
    check(key)?;
    let stem = encode(key, Letters::LowerOnly);
    if stem.len() > MAX_KEY_BYTES {
        return Err(Error::SessionKey {
            key: key.to_owned(),
            reason: "it is too long",
        });
    }
    Ok(stem)
}

/// Refuses keys that could name something outside the sessions directory.
fn check(key: &str) -> Result<(), Error> {
    let refuse = |reason| {
        Err(Error::SessionKey {
            key: key.to_owned(),
            reason,
        })
    };
    if key.is_empty() {
        return refuse("it is empty");
    }
    if key.contains(['/', '\\']) {
        return refuse("it contains a slash or backslash");
    }
    if key.contains("..") {
        return refuse("it contains '..'");
    }
    if key.contains('\0') {
        return refuse("it contains a NUL byte");
    }
    Ok(())
}

/// Which ASCII letters a name keeps as they are.
#[derive(Clone, Copy, PartialEq)]
enum Letters {
    /// Today's names: upper-case letters are escaped.
    LowerOnly,
    /// Earlier versions' names.
    Both,
}

fn encode(key: &str, letters: Letters) -> String {
    let mut stem = String::with_capacity(key.len());
    for (i, byte) in key.bytes().enumerate() {
        let plain = byte.is_ascii_lowercase()
            || byte.is_ascii_digit()
            || (letters == Letters::Both && byte.is_ascii_uppercase())
            || matches!(byte, b'-' | b'_')
            || (byte == b'.' && i > 0);
        if plain {
            stem.push(byte as char);
        } else {
            stem.push_str(&format!("%{byte:02X}"));
        }
    }
    stem
}

/// The name an earlier version gave `key`, where it differs from today's.
fn legacy_stem(key: &str) -> Option<String> {
    if !key.bytes().any(|b| b.is_ascii_uppercase()) || check(key).is_err() {
        return None;
    }
    let stem = encode(key, Letters::Both);
    (stem.len() <= MAX_KEY_BYTES).then_some(stem)
}

/// Who named a session file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    Current,
    /// An earlier version, which kept upper-case letters.
    Legacy,
}

/// The key a file name stands for, if clawft could have written it.
pub fn decode(file_name: &str) -> Option<(String, Naming)> {
    let stem = file_name.strip_suffix(".jsonl")?;
    let mut bytes = Vec::with_capacity(stem.len());
    let mut rest = stem.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    let key = String::from_utf8(bytes).ok()?;
    if file_stem(&key).ok().as_deref() == Some(stem) {
        Some((key, Naming::Current))
    } else if legacy_stem(&key).as_deref() == Some(stem) {
        Some((key, Naming::Legacy))
    } else {
        None
    }
}

/// Where a session's file is.
#[derive(Debug, PartialEq, Eq)]
pub enum Place {
    /// It exists, under today's name or an earlier version's.
    Found(PathBuf),
    /// There is none yet: a new one goes here.
    New(PathBuf),
}

/// Finds the file of `key` in `dir`.
pub fn locate(dir: &Path, key: &str) -> Result<Place, Error> {
    let current = file_stem(key);
    if let Ok(stem) = &current {
        if let Some(path) = exact(dir, stem)? {
            return Ok(Place::Found(path));
        }
    }
    if let Some(stem) = legacy_stem(key) {
        if let Some(path) = exact(dir, &stem)? {
            return Ok(Place::Found(path));
        }
    }
    Ok(Place::New(dir.join(format!("{}.jsonl", current?))))
}

/// Every file of `key`: today's name and an earlier version's, where they
/// exist. Refuses a key that could not name a session.
pub fn files(dir: &Path, key: &str) -> Result<Vec<PathBuf>, Error> {
    check(key)?;
    let legacy = legacy_stem(key);
    let current = match file_stem(key) {
        Ok(stem) => Some(stem),
        Err(_) if legacy.is_some() => None,
        Err(err) => return Err(err),
    };
    let mut found = Vec::new();
    for stem in current.iter().chain(&legacy) {
        found.extend(exact(dir, stem)?);
    }
    Ok(found)
}

/// `dir/<stem>.jsonl` if an entry has exactly that name.
fn exact(dir: &Path, stem: &str) -> Result<Option<PathBuf>, Error> {
    let name = format!("{stem}.jsonl");
    match find(dir, &name).map_err(|e| Error::io(dir.display(), e))? {
        Found::Exact => Ok(Some(dir.join(name))),
        Found::Twin(_) | Found::Absent => Ok(None),
    }
}

/// Makes sure creating `path` creates it. Where case is ignored, an earlier
/// version's file whose name differs only in case (`Work.jsonl` when
/// `work.jsonl` is wanted) would be opened instead: it is first renamed to
/// today's name for its own key, its contents untouched.
pub fn make_room(dir: &Path, path: &Path) -> Result<(), Error> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(());
    };
    let shown = |e| Error::io(dir.display(), e);
    let Found::Twin(twin) = find(dir, name).map_err(shown)? else {
        return Ok(());
    };
    // Only a session file is moved; anything else is left alone.
    let Some((key, Naming::Legacy)) = decode(&twin) else {
        return Ok(());
    };
    let conflict = || {
        let why = format!(
            "{twin} (session {}) differs from this name only in case, which this \
             filesystem ignores",
            crate::secrets::quoted(&key)
        );
        Error::io(
            path.display(),
            io::Error::new(io::ErrorKind::AlreadyExists, why),
        )
    };
    let Ok(stem) = file_stem(&key) else {
        return Err(conflict());
    };
    let target = format!("{stem}.jsonl");
    if !matches!(find(dir, &target).map_err(shown)?, Found::Absent) {
        return Err(conflict());
    }
    fs::rename(dir.join(&twin), dir.join(&target)).map_err(shown)
}

/// What a directory holds under a name.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    Exact,
    /// Only an entry whose name differs in case (where case is ignored,
    /// opening `name` would open it).
    Twin(String),
    Absent,
}

/// Looks `name` up in `dir`. A lookup is exact wherever case matters. Where
/// it does not, a lookup also finds names that differ only in case, and
/// then so does the name in upper case (`WORK.JSONL`), which no version of
/// clawft writes: only then is the directory listed to tell.
fn find(dir: &Path, name: &str) -> io::Result<Found> {
    if !present(&dir.join(name.to_ascii_uppercase()))? {
        return Ok(if present(&dir.join(name))? {
            Found::Exact
        } else {
            Found::Absent
        });
    }
    let mut twin = None;
    for entry in fs::read_dir(dir)? {
        let entry_name = entry?.file_name();
        match entry_name.to_str() {
            Some(n) if n == name => return Ok(Found::Exact),
            Some(n) if n.eq_ignore_ascii_case(name) => twin = Some(n.to_owned()),
            _ => {}
        }
    }
    Ok(twin.map_or(Found::Absent, Found::Twin))
}

/// Whether anything (a link included) has this path.
fn present(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_safe_file_names_and_back() {
        for (key, stem) in [
            ("work", "work"),
            ("Work", "%57ork"),
            ("cli:default", "cli%3Adefault"),
            ("a b.v2", "a%20b.v2"),
            (".hidden", "%2Ehidden"),
            ("日本", "%E6%97%A5%E6%9C%AC"),
        ] {
            assert_eq!(file_stem(key).unwrap(), stem);
            let name = format!("{stem}.jsonl");
            assert_eq!(decode(&name), Some((key.to_owned(), Naming::Current)));
        }
        for bad in ["", "a/b", "a\\b", "..", "x..y", "nul\0"] {
            let err = file_stem(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
        assert!(file_stem(&"x".repeat(201)).is_err());
        for foreign in [
            "%2.jsonl",
            "a%2Fb.jsonl",
            "a%2fb.jsonl",
            "work.json",
            "Work.JSONL",
        ] {
            assert_eq!(decode(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn keys_that_differ_only_in_case_get_names_that_differ_in_more_than_case() {
        // Found in review: "Work" and "work" were one file on macOS and Windows hosts.
        let keys = [
            "work", "Work", "WORK", "wOrK", "a.B", "a.b", "A%", "a%", "%41", "x-Y_z", "x-y_z",
        ];
        for a in keys {
            for b in keys.iter().filter(|&&b| b != a) {
                let (sa, sb) = (file_stem(a).unwrap(), file_stem(b).unwrap());
                assert!(
                    !sa.eq_ignore_ascii_case(&sb),
                    "{a:?} -> {sa}, {b:?} -> {sb}"
                );
            }
        }
    }

    #[test]
    fn earlier_names_are_recognised_and_only_their_own() {
        assert_eq!(legacy_stem("Work").as_deref(), Some("Work"));
        assert_eq!(legacy_stem("My Work").as_deref(), Some("My%20Work"));
        assert_eq!(legacy_stem("work"), None, "no upper case: the names agree");
        assert_eq!(
            decode("My%20Work.jsonl"),
            Some(("My Work".to_owned(), Naming::Legacy))
        );
        assert_eq!(
            decode("work.jsonl"),
            Some(("work".to_owned(), Naming::Current))
        );
        // A key too long for today's name keeps its earlier one.
        let long = "W".repeat(100);
        assert!(file_stem(&long).is_err());
        let name = format!("{long}.jsonl");
        assert_eq!(decode(&name), Some((long.clone(), Naming::Legacy)));
        let dir = crate::test_support::scratch();
        fs::write(dir.path().join(&name), "").unwrap();
        assert_eq!(
            locate(dir.path(), &long).unwrap(),
            Place::Found(dir.path().join(&name))
        );
        assert_eq!(files(dir.path(), &long).unwrap().len(), 1);
    }

    #[test]
    fn lookups_compare_exact_names_even_when_a_listing_is_needed() {
        let dir = crate::test_support::scratch();
        let dir = dir.path();
        fs::write(dir.join("work.jsonl"), "").unwrap();
        assert_eq!(find(dir, "work.jsonl").unwrap(), Found::Exact);
        assert_eq!(find(dir, "Work.jsonl").unwrap(), Found::Absent);
        assert_eq!(
            locate(dir, "Work").unwrap(),
            Place::New(dir.join("%57ork.jsonl"))
        );
        // With an upper-case twin on disk the listing decides, by exact name.
        fs::write(dir.join("WORK.JSONL"), "").unwrap();
        assert_eq!(find(dir, "work.jsonl").unwrap(), Found::Exact);
        assert!(matches!(find(dir, "Work.jsonl").unwrap(), Found::Twin(_)));
        assert_eq!(find(dir, "other.jsonl").unwrap(), Found::Absent);
    }
}
