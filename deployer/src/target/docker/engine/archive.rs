//! Tar archives for copying files into and out of containers.

use std::io::Read;

/// One file to place in a container.
pub struct File<'a> {
    /// Absolute path inside the container.
    pub path: &'a str,
    pub contents: &'a [u8],
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the epoch. Readers that cache a file by inode and mtime (nginx keeps a
    /// certificate loaded across reloads while both are unchanged, and the engine may write
    /// an uploaded file over the same inode) need a new mtime for new contents.
    pub mtime: u64,
}

/// A tar archive (to extract at `/`) holding `files`, and their parent directory
/// entries (mode 0755, root-owned).
pub fn tar(files: &[File<'_>]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs: Vec<String> = Vec::new();
    for f in files {
        let rel = f.path.trim_start_matches('/');
        if let Some((parent, _)) = rel.rsplit_once('/') {
            // Only the directory holding the file: existing ancestors (/run, /etc)
            // keep their own modes.
            if !dirs.iter().any(|d| d == parent) {
                dirs.push(parent.to_string());
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                h.set_mtime(0);
                b.append_data(&mut h, format!("{parent}/"), std::io::empty())?;
            }
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(f.contents.len() as u64);
        h.set_mode(f.mode);
        h.set_uid(f.uid);
        h.set_gid(f.gid);
        h.set_mtime(f.mtime);
        b.append_data(&mut h, rel, f.contents)?;
    }
    b.into_inner()
}

/// The contents of the first regular file in a tar archive.
pub fn first_file(tar: &[u8]) -> Option<Vec<u8>> {
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().ok()? {
        let mut entry = entry.ok()?;
        if entry.header().entry_type().is_file() {
            let mut out = Vec::new();
            entry.read_to_end(&mut out).ok()?;
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = tar(&[File {
            path: "/run/secrets/db_password",
            contents: b"hunter2",
            mode: 0o400,
            uid: 999,
            gid: 999,
            mtime: 0,
        }])
        .unwrap();
        assert_eq!(first_file(&t).unwrap(), b"hunter2");
        let mut a = tar::Archive::new(&t[..]);
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["run/secrets/", "run/secrets/db_password"]);
    }
}
