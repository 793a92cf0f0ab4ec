//! Private, content-addressed copies of plugin files: what the host actually loads.
//!
//! The dynamic loader treats a path it has loaded before as the same library, and a
//! library is never unloaded, so loading `plugins/x.so` again after a new build was
//! copied over it would silently keep the old code. Worse, copying over a file that is
//! mapped into the process changes the running code under it. Loading a copy named by
//! the hash of its content avoids both: a new build is a new path, the same build is the
//! same path (loaded once however often the host reloads), and nothing the operator does
//! to the plugins folder touches what is mapped.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// The staging directory.
#[derive(Debug)]
pub(crate) struct Staging {
    dir: PathBuf,
}

/// Hex digits of the content hash in a staged file's name.
const HASH_HEX: usize = 32;

impl Staging {
    /// Creates `dir` when missing and removes the copies an earlier process left there
    /// (only files named like copies: the directory is the host's, but a misconfigured
    /// one must not lose anything else).
    pub(crate) fn new(dir: PathBuf) -> io::Result<Staging> {
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if is_copy(&path) {
                // Removing a file another library still maps is harmless on Unix.
                let _ = fs::remove_file(&path);
            }
        }
        Ok(Staging { dir })
    }

    /// The private copy of `file`, made when this content has none yet.
    pub(crate) fn stage(&self, file: &Path) -> io::Result<PathBuf> {
        let bytes = fs::read(file)?;
        let hash = hex::encode(Sha256::digest(&bytes));
        let copy = self.dir.join(format!(
            "{}.{}",
            &hash[..HASH_HEX],
            std::env::consts::DLL_EXTENSION
        ));
        if !copy.is_file() {
            // Written under a temporary name and renamed, so no loader ever maps a
            // half-written copy.
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let partial = self.dir.join(format!(
                ".{}.{}-{n}.partial",
                &hash[..HASH_HEX],
                std::process::id()
            ));
            fs::write(&partial, &bytes)?;
            if let Err(e) = fs::rename(&partial, &copy) {
                let _ = fs::remove_file(&partial);
                return Err(e);
            }
        }
        Ok(copy)
    }
}

/// Whether `path` is named like a copy (or a partial one).
fn is_copy(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let hex_prefix = |s: &str| {
        s.len() > HASH_HEX
            && s.as_bytes()[..HASH_HEX]
                .iter()
                .all(|b| b.is_ascii_hexdigit())
    };
    match name.strip_prefix('.') {
        Some(rest) => hex_prefix(rest) && rest.ends_with(".partial"),
        None => {
            hex_prefix(name) && name[HASH_HEX..] == format!(".{}", std::env::consts::DLL_EXTENSION)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_named_by_content_and_cleared_by_the_next_process() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("staging");
        let staging = Staging::new(dir.clone()).unwrap();
        let a = tmp.path().join("a.so");
        fs::write(&a, b"one build").unwrap();
        let first = staging.stage(&a).unwrap();
        assert_eq!(staging.stage(&a).unwrap(), first, "same content, same copy");
        fs::write(&a, b"another build").unwrap();
        let second = staging.stage(&a).unwrap();
        assert_ne!(second, first, "a new build is a new copy");
        assert_eq!(fs::read(&second).unwrap(), b"another build");

        let keep = dir.join("notes.txt");
        fs::write(&keep, b"not ours").unwrap();
        Staging::new(dir.clone()).unwrap();
        assert!(!first.exists() && !second.exists());
        assert!(keep.exists(), "files not named like copies stay");
    }
}
