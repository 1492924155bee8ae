//! Session and lock files opened for writing: private where the OS has
//! permissions, and under WASI 0.2 through `wasi:filesystem` itself.
//!
//! On Unix, files are created 0600 and the sessions directory (and home, if
//! this creates it) 0700, whatever the umask. A session file or sessions
//! directory left more open by an earlier version loses its group and other
//! permissions the next time a turn is saved to it. Under WASI there are no
//! modes: the host decides, so keep the preopened directory private.
//!
//! Rust's std asks for `mutate-directory` on every file it opens for writing
//! under WASI 0.2, and jco's preview2-shim (Node) refuses that flag as "not
//! supported". So on that target a file is opened for writing with
//! `open-at` directly, asking only for read and write, and appended to
//! through its append stream.

use std::fs;
use std::io;
use std::path::Path;

/// Creates `dir` (and any missing parent) private, or makes an existing one
/// private.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    match fs::metadata(dir) {
        Ok(meta) => {
            make_private(dir, &meta);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir)
        }
        Err(e) => Err(e),
    }
}

/// Takes group and other permissions away, where there are any. Best
/// effort: a file its owner cannot change still gets written.
fn make_private(path: &Path, meta: &fs::Metadata) {
    if let Some(private) = private(meta) {
        let _ = fs::set_permissions(path, private);
    }
}

/// The permissions without group and other bits, if they had any.
#[cfg_attr(not(unix), allow(unused_variables))]
fn private(meta: &fs::Metadata) -> Option<fs::Permissions> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Some(fs::Permissions::from_mode(mode & !0o077));
        }
    }
    None
}

/// A file open for reading and writing.
pub struct Writable {
    #[cfg(not(all(target_os = "wasi", target_env = "p2")))]
    file: fs::File,
    #[cfg(all(target_os = "wasi", target_env = "p2"))]
    file: wasi::File,
}

#[cfg(not(all(target_os = "wasi", target_env = "p2")))]
impl Writable {
    /// Opens a session file for appending, creating it if need be.
    pub fn append_to(path: &Path) -> io::Result<Writable> {
        let mut options = fs::OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path)?;
        if let Some(private) = private(&file.metadata()?) {
            let _ = file.set_permissions(private);
        }
        Ok(Writable { file })
    }

    /// Creates a file that must not exist yet.
    pub fn create_new(path: &Path) -> io::Result<Writable> {
        let mut options = fs::OpenOptions::new();
        options.read(true).write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        Ok(Writable {
            file: options.open(path)?,
        })
    }

    pub fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// The byte at `offset`.
    pub fn byte_at(&mut self, offset: u64) -> io::Result<u8> {
        use std::io::{Read, Seek, SeekFrom};
        self.file.seek(SeekFrom::Start(offset))?;
        let mut byte = [0u8];
        self.file.read_exact(&mut byte)?;
        Ok(byte[0])
    }

    /// Writes `bytes` at the end of the file. A file from
    /// [`Writable::create_new`] is written from its start.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        io::Write::write_all(&mut self.file, bytes)
    }

    pub fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Takes the OS's exclusive lock, released when the file is closed.
    pub fn lock(&self) -> io::Result<()> {
        self.file.lock()
    }
}

#[cfg(all(target_os = "wasi", target_env = "p2"))]
impl Writable {
    /// Opens a session file for appending, creating it if need be.
    pub fn append_to(path: &Path) -> io::Result<Writable> {
        let file = wasi::File::open(path, false)?;
        Ok(Writable { file })
    }

    /// Creates a file that must not exist yet.
    pub fn create_new(path: &Path) -> io::Result<Writable> {
        let file = wasi::File::open(path, true)?;
        Ok(Writable { file })
    }

    pub fn len(&self) -> io::Result<u64> {
        self.file.len()
    }

    /// The byte at `offset`.
    pub fn byte_at(&mut self, offset: u64) -> io::Result<u8> {
        self.file.byte_at(offset)
    }

    /// Writes `bytes` at the end of the file.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.append(bytes)
    }

    pub fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// WASI has no file locks.
    pub fn lock(&self) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Files through `wasi:filesystem`, found under the preopened directory
/// that holds them, as wasi-libc finds them.
#[cfg(all(target_os = "wasi", target_env = "p2"))]
mod wasi {
    use std::io;
    use std::path::Path;

    use wasip2::filesystem::preopens::get_directories;
    use wasip2::filesystem::types::{Descriptor, DescriptorFlags, ErrorCode, OpenFlags, PathFlags};
    use wasip2::io::streams::StreamError;

    /// The most one blocking stream write may carry.
    const MAX_WRITE: usize = 4096;

    pub struct File(Descriptor);

    impl File {
        /// Opens `path` for reading and writing, creating it (exclusively
        /// if `new`). The last component must not be a link.
        pub fn open(path: &Path, new: bool) -> io::Result<File> {
            let (dir, relative) = preopened(path)?;
            let mut open = OpenFlags::CREATE;
            if new {
                open |= OpenFlags::EXCLUSIVE;
            }
            dir.open_at(
                PathFlags::empty(),
                &relative,
                open,
                DescriptorFlags::READ | DescriptorFlags::WRITE,
            )
            .map(File)
            .map_err(error)
        }

        pub fn len(&self) -> io::Result<u64> {
            Ok(self.0.stat().map_err(error)?.size)
        }

        pub fn byte_at(&self, offset: u64) -> io::Result<u8> {
            let (bytes, _) = self.0.read(1, offset).map_err(error)?;
            bytes
                .first()
                .copied()
                .ok_or_else(|| io::ErrorKind::UnexpectedEof.into())
        }

        /// Appends through the file's append stream: whatever else was
        /// written meanwhile, nothing already there is overwritten.
        pub fn append(&self, bytes: &[u8]) -> io::Result<()> {
            let stream = self.0.append_via_stream().map_err(error)?;
            for piece in bytes.chunks(MAX_WRITE) {
                stream
                    .blocking_write_and_flush(piece)
                    .map_err(|e| match e {
                        StreamError::LastOperationFailed(e) => {
                            io::Error::other(e.to_debug_string())
                        }
                        StreamError::Closed => io::ErrorKind::WriteZero.into(),
                    })?;
            }
            Ok(())
        }

        pub fn sync_data(&self) -> io::Result<()> {
            self.0.sync_data().map_err(error)
        }
    }

    /// The preopened directory holding `path` (the longest match) and the
    /// path relative to it. A relative path starts at `/`, wasi-libc's
    /// working directory (weft never changes it).
    fn preopened(path: &Path) -> io::Result<(Descriptor, String)> {
        let path = path
            .to_str()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path is not UTF-8"))?;
        let absolute = match path.strip_prefix('/') {
            Some(_) => path.to_owned(),
            None => format!("/{path}"),
        };
        let mut best: Option<(Descriptor, String, usize)> = None;
        for (dir, name) in get_directories() {
            let root = guest_root(&name);
            let Some(rest) = absolute.strip_prefix(root.as_str()) else {
                continue;
            };
            let relative = match rest.strip_prefix('/') {
                Some(relative) => relative,
                None if rest.is_empty() => ".",
                None => continue,
            };
            if best.as_ref().is_none_or(|(_, _, len)| root.len() > *len) {
                best = Some((dir, relative.to_owned(), root.len()));
            }
        }
        best.map(|(dir, relative, _)| (dir, relative))
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, "not inside a preopened directory")
            })
    }

    /// A preopen's name as an absolute path without a trailing `/`: `/` and
    /// `.` become the empty string.
    fn guest_root(name: &str) -> String {
        let name = name.trim_end_matches('/');
        let name = name.strip_prefix("./").unwrap_or(name);
        match name {
            "" | "." => String::new(),
            _ if name.starts_with('/') => name.to_owned(),
            _ => format!("/{name}"),
        }
    }

    fn error(code: ErrorCode) -> io::Error {
        use io::ErrorKind as Kind;
        let kind = match code {
            ErrorCode::NoEntry => Kind::NotFound,
            ErrorCode::Exist => Kind::AlreadyExists,
            ErrorCode::Access | ErrorCode::NotPermitted | ErrorCode::ReadOnly => {
                Kind::PermissionDenied
            }
            ErrorCode::Unsupported => Kind::Unsupported,
            _ => return io::Error::other(code.name()),
        };
        kind.into()
    }
}
