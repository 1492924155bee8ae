//! The clawft home directory and the one gate every file access goes through.
//!
//! Home is `$CLAWFT_HOME`, else `$HOME/.clawft` natively, else `/config`
//! under WASI, so `wasmtime run --dir ~/.clawft::/config` just works. No
//! guessing beyond that: under WASI `$HOME` means nothing about the host.
//!
//! [`Home::resolve`] maps a relative path to a real one and refuses anything
//! that would leave home (see [`crate::sandbox`]).

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::sandbox;

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

    /// Maps `relative` (with `/` separators) to a path inside home, or
    /// refuses; see [`sandbox::resolve`].
    pub fn resolve(&self, relative: &str) -> Result<PathBuf, Error> {
        sandbox::resolve(&self.root, relative, &sandbox::HOME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> (tempfile::TempDir, Home) {
        let dir = crate::test_support::scratch();
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

        // Natively $HOME/.clawft; under WASI the host's $HOME means nothing.
        let h = Home::discover(env(&[("CLAWFT_HOME", ""), ("HOME", "/home/u")])).unwrap();
        if cfg!(target_os = "wasi") {
            assert_eq!(h.root(), Path::new("/config"));
            assert_eq!(h.source(), HomeSource::WasiDefault);
        } else {
            assert_eq!(h.root(), Path::new("/home/u/.clawft"));
            let err = Home::discover(env(&[])).unwrap_err();
            assert_eq!(err.exit_code(), 2);
        }
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
        let outside = crate::test_support::scratch();
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

    /// Property tests over the committed fixture in `tests/fixtures/sandbox`,
    /// whose home holds symlinks that stay inside, lead out, are absolute,
    /// chain and loop. They run natively and inside wasmtime.
    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn fixture() -> Home {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sandbox/home");
            Home::at(root, HomeSource::ClawftHome)
        }

        /// Path components a hostile or careless caller might use.
        fn component() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => prop::sample::select(vec![
                    "..", ".", "", "real", "inside", "up", "out", "abs", "loop", "chain1",
                    "self", "escape", "deeper", "note.txt", "missing", "outside", "secret.txt",
                    "%2e%2e", "\u{2025}", "\u{ff0e}\u{ff0e}", ".. ", " ..", "...", "a\\..\\b",
                    "..\0", "\u{202e}txt.", "e\u{301}", "\u{1f600}",
                ])
                .prop_map(str::to_owned),
                1 => "\\PC{0,6}",
            ]
        }

        fn relative_path() -> impl Strategy<Value = String> {
            (prop::collection::vec(component(), 0..8), any::<bool>()).prop_map(|(parts, slash)| {
                let joined = parts.join("/");
                if slash {
                    format!("{joined}/")
                } else {
                    joined
                }
            })
        }

        /// Whether any existing prefix of `path` below `root` is a symlink.
        fn passes_through_symlink(root: &Path, path: &Path) -> bool {
            let mut here = root.to_path_buf();
            for part in path.strip_prefix(root).expect("under root").components() {
                here.push(part);
                if std::fs::symlink_metadata(&here).is_ok_and(|m| m.file_type().is_symlink()) {
                    return true;
                }
            }
            false
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

            /// Whatever the input, the answer is a refusal or a plain path
            /// under home that goes through no symlink, so the OS cannot be
            /// steered outside; resolving it again gives the same path.
            #[test]
            fn no_input_escapes_home(rel in relative_path()) {
                let home = fixture();
                match home.resolve(&rel) {
                    Err(Error::Sandbox { .. }) => {}
                    Err(other) => prop_assert!(false, "{rel:?}: unexpected error {other}"),
                    Ok(path) => {
                        prop_assert!(path.starts_with(home.root()), "{rel:?} -> {path:?}");
                        let inner = path.strip_prefix(home.root()).unwrap();
                        prop_assert!(
                            inner.components().all(|c| matches!(c, std::path::Component::Normal(_))),
                            "{rel:?} -> {path:?}"
                        );
                        prop_assert!(!passes_through_symlink(home.root(), &path), "{rel:?} -> {path:?}");
                        let again = home.resolve(inner.to_str().unwrap()).unwrap();
                        prop_assert_eq!(&again, &path);
                        #[cfg(not(target_os = "wasi"))]
                        if let Ok(real) = std::fs::canonicalize(&path) {
                            let real_root = std::fs::canonicalize(home.root()).unwrap();
                            prop_assert!(real.starts_with(&real_root), "{rel:?} -> {real:?}");
                        }
                    }
                }
            }

            /// Absolute paths are refused whatever follows.
            #[test]
            fn absolute_paths_are_refused(rel in relative_path()) {
                let refused = matches!(fixture().resolve(&format!("/{rel}")), Err(Error::Sandbox { .. }));
                prop_assert!(refused);
            }
        }

        #[test]
        fn the_fixture_links_resolve_as_documented() {
            let home = fixture();
            let root = home.root().to_path_buf();
            assert_eq!(
                home.resolve("inside/note.txt").unwrap(),
                root.join("real/note.txt")
            );
            assert_eq!(
                home.resolve("chain1/file.txt").unwrap(),
                root.join("real/deeper/file.txt")
            );
            assert_eq!(
                home.resolve("real/self/note.txt").unwrap(),
                root.join("real/note.txt")
            );
            // Found by the properties above: stepping back with `..` out of a
            // missing part onto a link, and a path through a file.
            assert_eq!(home.resolve("self/../inside").unwrap(), root.join("real"));
            assert_eq!(
                home.resolve("real/note.txt/real").unwrap(),
                root.join("real/note.txt/real")
            );
            for bad in [
                "abs",
                "up/outside/secret.txt",
                "out/secret.txt",
                "abs/passwd",
                "loop",
                "real/escape/secret.txt",
                "missing/../out/secret.txt",
            ] {
                assert!(
                    matches!(home.resolve(bad), Err(Error::Sandbox { .. })),
                    "{bad}"
                );
            }
        }
    }
}
