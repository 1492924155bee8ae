//! One writer at a time per session, so the check of a file's last byte and
//! the append that follows see no other writer in between.
//!
//! Natively this is the OS's file lock on the session file. Under WASI there
//! is none: the lock is a file beside the session, `<name>.jsonl.lock`,
//! created exclusively and holding a random token, and removed by its holder
//! when done, but only while the token in it is still its own.
//!
//! A writer that dies leaves its lock file behind. One older than
//! [`STALE`] is taken over, and a turn waits [`WAIT`], longer than that, so
//! a turn right after a crash still saves. Only one waiter at a time may
//! take over (see [`take_over`]), and it only removes the stale file; then
//! every waiter competes again with an exclusive create.
//!
//! Nothing refreshes a lock: an append takes milliseconds, far below
//! [`STALE`]. A holder stalled longer than that (a stopped process) can lose
//! its lock; it then leaves the new holder's lock alone.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::file::Writable;

/// A lock file this old was left by a writer that died mid-append.
pub const STALE: Duration = Duration::from_secs(30);
/// How long a turn waits for another writer of the same session: long
/// enough to outlive a lock left by a crash a moment ago.
pub const WAIT: Duration = Duration::from_secs(STALE.as_secs() + 15);
const _: () = assert!(WAIT.as_secs() > STALE.as_secs());

/// How long to wait and when a lock file is stale (shortened in tests).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub wait: Duration,
    pub stale: Duration,
}

pub const TIMING: Timing = Timing {
    wait: WAIT,
    stale: STALE,
};

/// An exclusive hold on a session, released when dropped.
#[derive(Debug)]
pub enum AppendLock {
    /// The OS's file lock, released with the file.
    Os,
    /// A lock file and the token written in it.
    File { path: PathBuf, token: String },
}

impl Drop for AppendLock {
    fn drop(&mut self) {
        if let AppendLock::File { path, token } = self {
            // Only our own: after a stall past STALE it may be another's.
            if fs::read(&*path).is_ok_and(|held| held == token.as_bytes()) {
                let _ = fs::remove_file(&*path);
            }
        }
    }
}

/// Locks the session `path`, whose file is open as `file`: with the OS's
/// lock where there is one, else with a lock file.
pub fn lock(file: &Writable, path: &Path) -> io::Result<AppendLock> {
    match file.lock() {
        Ok(()) => Ok(AppendLock::Os),
        Err(e) if e.kind() == io::ErrorKind::Unsupported => lock_file(path, TIMING),
        Err(e) => Err(e),
    }
}

/// Takes the lock file of the session `path`, waiting up to `timing.wait`.
pub fn lock_file(session: &Path, timing: Timing) -> io::Result<AppendLock> {
    let mut name = session.as_os_str().to_owned();
    name.push(".lock");
    let lock = PathBuf::from(name);
    let token = token();
    let started = Instant::now();
    loop {
        match Writable::create_new(&lock) {
            Ok(mut file) => {
                if let Err(e) = file.append(token.as_bytes()) {
                    let _ = fs::remove_file(&lock);
                    return Err(e);
                }
                return Ok(AppendLock::File { path: lock, token });
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if is_stale(&lock, timing.stale) {
                    take_over(&lock, &token, timing.stale)?;
                    continue;
                }
                let waited = started.elapsed();
                if waited >= timing.wait {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "another weft has been writing this session for over {} s; \
                             if none is running, remove {}",
                            timing.wait.as_secs(),
                            lock.display()
                        ),
                    ));
                }
                // Short pauses while a live writer finishes, longer ones
                // while a dead writer's lock grows stale.
                let pause =
                    (waited / 20).clamp(Duration::from_millis(5), Duration::from_millis(100));
                std::thread::sleep(pause);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether the file at `path` was last written more than `stale` ago.
fn is_stale(path: &Path, stale: Duration) -> bool {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > stale)
}

/// Removes a stale lock file, one waiter at a time: under a second lock
/// file, taken only for this, the lock is looked at again (another waiter
/// may have taken it over and locked afresh since our look), then moved to
/// a name of our own and removed. Between that look and the move only a
/// holder that stalled past `stale` can change it, so what was moved is
/// checked once more and put back unless it is stale.
fn take_over(lock: &Path, token: &str, stale: Duration) -> io::Result<()> {
    let mut name = lock.as_os_str().to_owned();
    name.push(".takeover");
    let takeover = PathBuf::from(name);
    match Writable::create_new(&takeover) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // Another waiter is at it; one that died at it left this behind.
            if is_stale(&takeover, stale) {
                let _ = fs::remove_file(&takeover);
            }
            return Ok(());
        }
        Err(e) => return Err(e),
    }
    let moved = if is_stale(lock, stale) {
        move_aside(lock, token, stale)
    } else {
        Ok(())
    };
    let _ = fs::remove_file(&takeover);
    moved
}

fn move_aside(lock: &Path, token: &str, stale: Duration) -> io::Result<()> {
    let mut name = lock.as_os_str().to_owned();
    name.push(".");
    name.push(token);
    let aside = PathBuf::from(name);
    match fs::rename(lock, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    if is_stale(&aside, stale) {
        return fs::remove_file(&aside);
    }
    // Taken afresh after a stalled holder let go: put it back. A link
    // fails rather than replace a lock taken meanwhile; where there are no
    // links, a rename does while the name is free.
    let back = match fs::hard_link(&aside, lock) {
        Ok(()) => Ok(()),
        Err(_) if fs::symlink_metadata(lock).is_ok() => Ok(()),
        Err(_) => fs::rename(&aside, lock),
    };
    let _ = fs::remove_file(&aside);
    back
}

/// A token no other lock holder has: 64 random bits, from WASI's random
/// source or, elsewhere, the standard library's seeded hasher.
fn token() -> String {
    #[cfg(all(target_os = "wasi", target_env = "p2"))]
    let random = wasip2::random::random::get_random_u64();
    #[cfg(not(all(target_os = "wasi", target_env = "p2")))]
    let random = {
        use std::hash::{BuildHasher, Hasher};
        use std::sync::atomic::{AtomicU64, Ordering};
        static TAKEN: AtomicU64 = AtomicU64::new(0);
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(TAKEN.fetch_add(1, Ordering::Relaxed));
        hasher.finish()
    };
    format!("{random:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session path in a fresh directory, and the directory.
    fn session() -> (tempfile::TempDir, PathBuf) {
        let dir = crate::test_support::scratch();
        let path = dir.path().join("s.jsonl");
        (dir, path)
    }

    fn lock_path(session: &Path) -> PathBuf {
        let mut name = session.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Makes the file look last written `ago`.
    fn age(path: &Path, ago: Duration) {
        let file = fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - ago).unwrap();
    }

    /// What a writer that died mid-append leaves behind.
    fn crashed_writer(session: &Path, ago: Duration) {
        let lock = lock_path(session);
        fs::write(&lock, "dead").unwrap();
        age(&lock, ago);
    }

    const QUICK: Timing = Timing {
        wait: Duration::from_millis(1500),
        stale: Duration::from_millis(1000),
    };

    #[test]
    fn the_lock_file_is_exclusive_and_released() {
        let (_dir, session) = session();
        let held = lock_file(&session, TIMING).unwrap();
        let short = Timing {
            wait: Duration::from_millis(50),
            ..TIMING
        };
        let err = lock_file(&session, short).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let message = err.to_string();
        assert!(message.contains("another weft"), "{message}");
        assert!(message.contains("s.jsonl.lock"), "{message}");
        drop(held);
        assert!(!lock_path(&session).exists());
        drop(lock_file(&session, short).unwrap());
    }

    #[test]
    fn a_turn_right_after_a_crash_outlives_the_lock_it_left() {
        // Found in review: the wait (10 s) was shorter than staleness (30 s).
        let (_dir, session) = session();
        crashed_writer(&session, Duration::ZERO);
        let started = Instant::now();
        let held = lock_file(&session, QUICK).unwrap();
        assert!(started.elapsed() >= QUICK.stale);
        assert!(matches!(held, AppendLock::File { .. }));
    }

    #[test]
    fn a_holder_that_stalled_and_lost_its_lock_leaves_the_new_one_alone() {
        let (_dir, session) = session();
        let stalled = lock_file(&session, QUICK).unwrap();
        age(&lock_path(&session), QUICK.stale * 2);
        let current = lock_file(&session, QUICK).unwrap();
        let AppendLock::File { token, .. } = &current else {
            panic!("not a lock file")
        };
        drop(stalled);
        let in_place = fs::read_to_string(lock_path(&session)).unwrap();
        assert_eq!(&in_place, token, "the stalled holder removed the new lock");
        drop(current);
        assert!(!lock_path(&session).exists());
    }

    #[test]
    fn a_fresh_lock_is_never_taken_over() {
        // A waiter that saw a stale lock, then lost the race to another
        // waiter that took over and locked afresh, comes to take over.
        let (_dir, session) = session();
        let lock = lock_path(&session);
        let current = lock_file(&session, QUICK).unwrap();
        take_over(&lock, &token(), QUICK.stale).unwrap();
        // Even when it got as far as moving it (after a stalled holder let
        // go between its look and its move), it puts it back.
        move_aside(&lock, &token(), QUICK.stale).unwrap();
        let AppendLock::File { token, .. } = &current else {
            panic!("not a lock file")
        };
        assert_eq!(&fs::read_to_string(&lock).unwrap(), token);
        let names = fs::read_dir(lock.parent().unwrap()).unwrap().count();
        assert_eq!(names, 1, "nothing left aside");
    }

    // Threads: natively only (WASI has none).
    #[cfg(not(target_os = "wasi"))]
    #[test]
    fn many_waiters_take_over_a_stale_lock_one_at_a_time() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Barrier};
        const WAITERS: usize = 8;
        for round in 0..40 {
            let (_dir, session) = session();
            crashed_writer(&session, Duration::from_secs(3600));
            let inside = Arc::new(AtomicUsize::new(0));
            let most = Arc::new(AtomicUsize::new(0));
            let start = Arc::new(Barrier::new(WAITERS));
            let waiters: Vec<_> = (0..WAITERS)
                .map(|_| {
                    let (session, inside, most, start) =
                        (session.clone(), inside.clone(), most.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        let held = lock_file(&session, TIMING).unwrap();
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(2));
                        inside.fetch_sub(1, Ordering::SeqCst);
                        drop(held);
                    })
                })
                .collect();
            for waiter in waiters {
                waiter.join().unwrap();
            }
            assert_eq!(
                most.load(Ordering::SeqCst),
                1,
                "round {round}: two writers at once"
            );
            let left: Vec<_> = fs::read_dir(session.parent().unwrap()).unwrap().collect();
            assert!(left.is_empty(), "round {round}: {left:?} left behind");
        }
    }
}
