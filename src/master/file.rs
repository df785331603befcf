//! Reading and checking a master file: a regular file (a link to one is followed), not
//! readable or writable by group or others (a Kubernetes Secret mounted group-readable on a
//! read-only volume excepted), written by nobody but root and this user ([`crate::trust`]),
//! and read, bounded, only once those checks have passed.

use std::io;
use std::path::Path;

use super::{MAX_LEN, MasterError, MasterSecret};
use crate::secret_file::{self, ReadError};

pub(super) fn load_file(path: &Path) -> Result<MasterSecret, MasterError> {
    // Who could have written it is checked before a byte of it is read.
    let meta = std::fs::metadata(path).map_err(|error| match error.kind() {
        io::ErrorKind::NotFound => MasterError::Missing {
            path: path.to_owned(),
        },
        _ => MasterError::Read(ReadError::Io {
            path: path.to_owned(),
            error,
        }),
    })?;
    if meta.is_file() {
        // A Kubernetes Secret mounted with `fsGroup` is group-readable, on a read-only
        // filesystem that nobody can write: that one opening is accepted.
        let group_read_on_read_only =
            |mode: u32| mode & 0o077 == 0o040 && crate::trust::on_read_only_fs(path);
        if let Some(mode) = secret_file::mode_of(&meta)
            .filter(|&mode| secret_file::is_too_open(mode) && !group_read_on_read_only(mode))
        {
            return Err(MasterError::TooOpen {
                path: path.to_owned(),
                mode: mode & 0o7777,
                mounted: crate::trust::in_mounted_volume(path),
            });
        }
        // Then who could have written it: its owner, and the folders on the way to it.
        crate::trust::check_file(path, "the master")
            .map_err(|e| MasterError::Untrusted(Box::new(e)))?;
    }
    // Not a regular file (a FIFO, a device): refused here, without opening it.
    let file = secret_file::read_secret_file(path, MAX_LEN).map_err(|e| match e {
        ReadError::Missing { path } => MasterError::Missing { path },
        other => MasterError::Read(other),
    })?;
    let contents = file.contents.ok_or(MasterError::TooLong)?;
    MasterSecret::from_text(&contents)
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::master::MasterSource;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn write(dir: &Path, content: &[u8], mode: u32) -> PathBuf {
        let path = dir.join("master.key");
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn file_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), b"\n\t a master of 24 bytes!! \r\n\x0b", 0o600);
        let master = MasterSource::File(path).load().unwrap();
        assert_eq!(master.expose_secret(), b"a master of 24 bytes!!");
    }

    /// Go's `bytes.TrimSpace`: Unicode spaces at the ends go, an invalid byte stops the
    /// trimming, and what lies inside stays.
    #[test]
    fn file_is_trimmed_as_go_trims_it() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&[u8], &[u8]); 4] = [
            ("\u{feff}".as_bytes(), "\u{feff}".as_bytes()),
            ("\u{3000}\u{a0}".as_bytes(), b""),
            (b"\xff\xc2\xa0", b"\xff\xc2\xa0"),
            ("\u{2028}\u{85}\u{1680}".as_bytes(), b""),
        ];
        for (pad, kept) in cases {
            let mut content = pad.to_vec();
            content.extend_from_slice("a master\u{a0}of 24 bytes".as_bytes());
            content.extend_from_slice("\u{2029}\u{202f}\r\n".as_bytes());
            let path = write(dir.path(), &content, 0o600);
            let master = MasterSource::File(path).load().unwrap();
            let mut expected = kept.to_vec();
            expected.extend_from_slice("a master\u{a0}of 24 bytes".as_bytes());
            assert_eq!(master.expose_secret(), &expected[..], "{pad:?}");
        }
        let only_spaces = write(dir.path(), "\u{3000}\n\u{a0}".as_bytes(), 0o600);
        assert!(matches!(
            MasterSource::File(only_spaces).load(),
            Err(MasterError::Empty)
        ));
    }

    #[test]
    fn refusals() {
        let dir = tempfile::tempdir().unwrap();
        type Case<'a> = (&'a [u8], u32, fn(&MasterError) -> bool);
        let cases: [Case; 6] = [
            (b"a master of 24 bytes!!", 0o644, |e| {
                matches!(e, MasterError::TooOpen { mode: 0o644, .. })
            }),
            (b"a master of 24 bytes!!", 0o660, |e| {
                matches!(e, MasterError::TooOpen { .. })
            }),
            (b" \n\n", 0o600, |e| matches!(e, MasterError::Empty)),
            (b"", 0o600, |e| matches!(e, MasterError::Empty)),
            (b"  fifteen bytes!!\n", 0o600, |e| {
                matches!(e, MasterError::TooShort { len: 15 })
            }),
            (&[b'a'; MAX_LEN + 1], 0o600, |e| {
                matches!(e, MasterError::TooLong)
            }),
        ];
        for (content, mode, is_expected) in cases {
            let path = write(dir.path(), content, mode);
            let err = MasterSource::File(path).load().unwrap_err();
            assert!(is_expected(&err), "{err}");
        }
    }

    #[test]
    fn too_open_message_has_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), b"a master of 24 bytes!!", 0o640);
        let err = MasterSource::File(path.clone()).load().unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("chmod 600 {}", path.display())),
            "{err}"
        );
    }

    #[test]
    fn missing_file_says_run_init() {
        let err = MasterSource::File("/nonexistent/x".into())
            .load()
            .unwrap_err();
        assert!(err.to_string().contains("gobuildkey init"), "{err}");
    }
}
