//! Who runs this process, as an action records it: the effective user, the person behind
//! `sudo`, the login uid, the machine.

#[cfg(unix)]
use std::fs;

/// Who runs this process.
pub(super) struct Who {
    pub(super) user: String,
    pub(super) uid: u32,
    pub(super) invoked_by: Option<String>,
    pub(super) login_uid: Option<u32>,
    pub(super) host: String,
}

impl Who {
    #[cfg(unix)]
    pub(super) fn current() -> Self {
        let uid = rustix::process::geteuid().as_raw();
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map_or_else(|| uid.to_string(), |user| user.name);
        // sudo says who ran it; a user cannot fake it without also being able to run
        // commands as this one.
        let invoked_by = std::env::var("SUDO_USER")
            .ok()
            .filter(|name| !name.is_empty() && *name != user && name.len() <= 256);
        let login_uid = fs::read_to_string("/proc/self/loginuid")
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
            .filter(|&id| id != u32::MAX && id != uid);
        let host = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        Self {
            user,
            uid,
            invoked_by,
            login_uid,
            host,
        }
    }

    #[cfg(not(unix))]
    pub(super) fn current() -> Self {
        Self {
            user: std::env::var("USERNAME").unwrap_or_default(),
            uid: 0,
            invoked_by: None,
            login_uid: None,
            host: std::env::var("COMPUTERNAME").unwrap_or_default(),
        }
    }
}
