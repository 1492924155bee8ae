//! The one gate every file access goes through: a relative path is mapped
//! into a root directory (the clawft home, the tools' workspace) and
//! anything that would leave it is refused: absolute paths, `..` past the
//! root, NUL bytes, backslashes, and symlinks (followed by hand, on every
//! target) whose target lies outside. Under WASI the host's preopens are a
//! second wall behind this one.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// Symlinks followed before a path is refused as a loop.
const MAX_SYMLINKS: usize = 40;

/// How refusals name the root they protect.
#[derive(Debug)]
pub struct Words {
    pub leads_outside: &'static str,
    pub link_outside: &'static str,
}

/// The clawft home.
pub const HOME: Words = Words {
    leads_outside: "it leads outside the clawft home",
    link_outside: "a symbolic link on the way points outside the clawft home",
};

/// The tools' workspace.
pub const WORKSPACE: Words = Words {
    leads_outside: "it leads outside the workspace",
    link_outside: "a symbolic link on the way points outside the workspace",
};

/// Maps `relative` (with `/` separators) to a path inside `root`, or
/// refuses. Existing symlinks along the way are followed by hand so that
/// one pointing outside is refused even where the OS would follow it.
pub fn resolve(root: &Path, relative: &str, words: &Words) -> Result<PathBuf, Error> {
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
                    return Err(refuse(words.leads_outside));
                }
                // Back up out of a missing part: what follows may exist.
                on_disk = true;
                continue;
            }
            _ => {}
        }
        inside.push(part);
        if !on_disk {
            continue;
        }
        let here = join(root, &inside);
        match std::fs::symlink_metadata(&here) {
            Ok(meta) if meta.file_type().is_symlink() => {
                symlinks += 1;
                if symlinks > MAX_SYMLINKS {
                    return Err(refuse("too many levels of symbolic links"));
                }
                let target = match std::fs::read_link(&here) {
                    Ok(target) => target,
                    // A WASI host will not even read a link that points
                    // outside its preopened directory (wasmtime: EPERM).
                    Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                        return Err(refuse(words.link_outside));
                    }
                    Err(e) => return Err(Error::io(here.display(), e)),
                };
                inside.pop();
                let (target, from_root) =
                    link_target(root, &target).ok_or_else(|| refuse(words.link_outside))?;
                if from_root {
                    inside.clear();
                }
                pending.extend(target.into_iter().rev());
            }
            Ok(_) => {}
            // Nothing there (or a file where a directory would be): nothing to follow.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                on_disk = false
            }
            Err(e) => return Err(Error::io(here.display(), e)),
        }
    }
    Ok(join(root, &inside))
}

fn join(root: &Path, parts: &[String]) -> PathBuf {
    let mut path = root.to_path_buf();
    path.extend(parts);
    path
}

/// A symlink target as components, and whether they start at the root
/// (an absolute target, which must lie under it) rather than at the
/// link's own directory.
fn link_target(root: &Path, target: &Path) -> Option<(Vec<String>, bool)> {
    let from_root = target.has_root();
    let rest = if from_root {
        target.strip_prefix(root).ok()?
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
