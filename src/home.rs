//! The clawft home directory and the one gate every file access goes through.
//!
//! Home is `$CLAWFT_HOME`, else `$HOME/.clawft` natively, else `/config`
//! under WASI, so `wasmtime run --dir ~/.clawft::/config` just works. No
//! guessing beyond that: under WASI `$HOME` means nothing about the host.
//!
//! [`Home::resolve`] maps a relative path to a real one and refuses anything
//! that would leave home: absolute paths, `..` past the root, NUL bytes, and
//! symlinks (followed by hand, on every target) whose target lies outside.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// Symlinks followed before a path is refused as a loop.
const MAX_SYMLINKS: usize = 40;

/// Where the home directory came from, for `weft status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HomeSource {
    /// `$CLAWFT_HOME`
    ClawftHome,
    /// `$HOME/.clawft`
    UserHome,
    /// `/config`, the preopened directory a WASI host is told to map.
    WasiDefault,
}

impl HomeSource {
    pub fn describe(self) -> &'static str {
        match self {
            HomeSource::ClawftHome => "CLAWFT_HOME",
            HomeSource::UserHome => "HOME",
            HomeSource::WasiDefault => "WASI default",
        }
    }
}

/// The clawft home: config, sessions, and nothing outside it.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
    source: HomeSource,
}

impl Home {
    /// Finds home from the environment (`env` looks a variable up).
    pub fn discover(env: impl Fn(&str) -> Option<String>) -> Result<Home, Error> {
        let set = |name: &str| env(name).filter(|v| !v.is_empty());
        if let Some(dir) = set("CLAWFT_HOME") {
            return Ok(Home::at(dir, HomeSource::ClawftHome));
        }
        if cfg!(target_os = "wasi") {
            return Ok(Home::at("/config", HomeSource::WasiDefault));
        }
        match set("HOME") {
            Some(dir) => Ok(Home::at(
                Path::new(&dir).join(".clawft"),
                HomeSource::UserHome,
            )),
            None => Err(Error::Config(
                "no home directory: set CLAWFT_HOME (or HOME)".into(),
            )),
        }
    }

    /// A home rooted at `root`.
    pub fn at(root: impl Into<PathBuf>, source: HomeSource) -> Home {
        Home {
            root: root.into(),
            source,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn source(&self) -> HomeSource {
        self.source
    }

    pub fn config_file(&self) -> Result<PathBuf, Error> {
        self.resolve("config.json")
    }

    pub fn sessions_dir(&self) -> Result<PathBuf, Error> {
        self.resolve("sessions")
    }

    /// Maps `relative` (with `/` separators) to a path inside home, or refuses.
    ///
    /// Existing symlinks along the way are followed by hand so that one
    /// pointing outside home is refused even where the OS would follow it.
    pub fn resolve(&self, relative: &str) -> Result<PathBuf, Error> {
        let refuse = |reason| Error::Sandbox {
            path: relative.to_owned(),
            reason,
        };
        if relative.contains('\0') {
            return Err(refuse("it contains a NUL byte"));
        }
        if relative.contains('\\') {
            return Err(refuse("it contains a backslash"));
        }
        if relative.starts_with('/') || Path::new(relative).has_root() {
            return Err(refuse("absolute paths are not allowed"));
        }

        // Components still to walk, innermost last so `pop` takes the next one.
        let mut pending: Vec<String> = relative.rsplit('/').map(str::to_owned).collect();
        let mut inside: Vec<String> = Vec::new();
        let mut symlinks = 0;
        let mut on_disk = true; // false once a component does not exist
        while let Some(part) = pending.pop() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    if inside.pop().is_none() {
                        return Err(refuse("it leads outside the clawft home"));
                    }
                    continue;
                }
                _ => {}
            }
            inside.push(part);
            if !on_disk {
                continue;
            }
            let here = self.join(&inside);
            match std::fs::symlink_metadata(&here) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    symlinks += 1;
                    if symlinks > MAX_SYMLINKS {
                        return Err(refuse("too many levels of symbolic links"));
                    }
                    let target =
                        std::fs::read_link(&here).map_err(|e| Error::io(here.display(), e))?;
                    inside.pop();
                    let (target, from_root) = self.link_target(&target).ok_or_else(|| {
                        refuse("a symbolic link on the way points outside the clawft home")
                    })?;
                    if from_root {
                        inside.clear();
                    }
                    pending.extend(target.into_iter().rev());
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => on_disk = false,
                Err(e) => return Err(Error::io(here.display(), e)),
            }
        }
        Ok(self.join(&inside))
    }

    fn join(&self, parts: &[String]) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(parts);
        path
    }

    /// A symlink target as components, and whether they start at home's
    /// root (an absolute target, which must lie under home) rather than at
    /// the link's own directory.
    fn link_target(&self, target: &Path) -> Option<(Vec<String>, bool)> {
        let from_root = target.has_root();
        let rest = if from_root {
            target.strip_prefix(&self.root).ok()?
        } else {
            target
        };
        let mut parts = Vec::new();
        for c in rest.components() {
            use std::path::Component as C;
            match c {
                C::Normal(s) => parts.push(s.to_str()?.to_owned()),
                C::CurDir => {}
                C::ParentDir => parts.push("..".into()),
                C::RootDir | C::Prefix(_) => return None,
            }
        }
        Some((parts, from_root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> (tempfile::TempDir, Home) {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path(), HomeSource::ClawftHome);
        (dir, home)
    }

    #[test]
    fn discovery_prefers_clawft_home_then_home() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let h = Home::discover(env(&[("CLAWFT_HOME", "/srv/cf"), ("HOME", "/home/u")])).unwrap();
        assert_eq!(h.root(), Path::new("/srv/cf"));
        assert_eq!(h.source(), HomeSource::ClawftHome);

        let h = Home::discover(env(&[("CLAWFT_HOME", ""), ("HOME", "/home/u")])).unwrap();
        assert_eq!(h.root(), Path::new("/home/u/.clawft"));

        let err = Home::discover(env(&[])).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn plain_paths_resolve_under_home() {
        let (_dir, home) = home();
        assert_eq!(
            home.resolve("sessions/a.jsonl").unwrap(),
            home.root().join("sessions").join("a.jsonl")
        );
        assert_eq!(
            home.resolve("./sessions/../config.json").unwrap(),
            home.root().join("config.json")
        );
        assert_eq!(home.resolve("").unwrap(), home.root());
    }

    #[test]
    fn escapes_are_refused() {
        let (_dir, home) = home();
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "sessions/..\\..\\x",
            "a\0b",
        ] {
            let err = home.resolve(bad).unwrap_err();
            assert!(matches!(err, Error::Sandbox { .. }), "{bad}: {err}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_followed_but_may_not_leave_home() {
        use std::os::unix::fs::symlink;
        let (dir, home) = home();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        symlink("real", dir.path().join("inner")).unwrap();
        symlink(outside.path(), dir.path().join("out")).unwrap();
        symlink("../..", dir.path().join("real/up")).unwrap();
        symlink("loop", dir.path().join("loop")).unwrap();

        assert_eq!(
            home.resolve("inner/x").unwrap(),
            dir.path().join("real").join("x")
        );
        for bad in ["out/x", "real/up/etc", "loop/x"] {
            let err = home.resolve(bad).unwrap_err();
            assert!(matches!(err, Error::Sandbox { .. }), "{bad}: {err}");
        }
        // An absolute link that stays inside home is fine.
        symlink(dir.path().join("real"), dir.path().join("abs")).unwrap();
        assert_eq!(
            home.resolve("abs/y").unwrap(),
            dir.path().join("real").join("y")
        );
    }
}
