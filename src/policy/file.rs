//! Reading the policy file safely: who may have written it, how large it is, and a
//! fingerprint that tells the watcher it changed.
//!
//! On Unix a file is refused when anyone else could have written it: world-writable, owned by
//! someone other than root or the user the agent runs as, or in a directory others may write
//! to (unless it is sticky, like /tmp). Windows' ACLs are not checked yet (docs/policy.md).

use std::path::Path;

/// Largest policy file read (a policy is a few kilobytes; SAML certificates make it larger).
pub const MAX_POLICY_BYTES: u64 = 1024 * 1024;

/// What identifies one version of the file without reading it: a change of content, of
/// owner or of permissions (or a replacement by rename) changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(Vec<i128>);

/// The file as read.
#[derive(Debug)]
pub enum Read {
    /// There is no policy file: nothing is managed.
    Absent,
    /// Its bytes, checked to be safe to trust.
    Bytes(Vec<u8>),
}

/// The file's fingerprint (`None` when there is no file).
pub fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let meta = std::fs::metadata(path).ok()?;
    let mut parts: Vec<i128> = vec![i128::from(meta.len())];
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        parts.extend([
            i128::from(meta.dev()),
            i128::from(meta.ino()),
            i128::from(meta.mtime()),
            i128::from(meta.mtime_nsec()),
            i128::from(meta.ctime()),
            i128::from(meta.ctime_nsec()),
            i128::from(meta.mode()),
            i128::from(meta.uid()),
            i128::from(meta.gid()),
        ]);
    }
    if let Ok(m) = meta.modified()
        && let Ok(d) = m.duration_since(std::time::UNIX_EPOCH)
    {
        parts.push(i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
    }
    Some(Fingerprint(parts))
}

/// Reads the file, refusing one that is unsafe to trust or too large. The error is the reason,
/// for the log and the audit trail.
pub fn read(path: &Path) -> Result<Read, String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Read::Absent),
        Err(e) => return Err(format!("cannot be read: {e}")),
    };
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    if meta.len() > MAX_POLICY_BYTES {
        return Err(format!(
            "is {} bytes; a policy file may hold at most {MAX_POLICY_BYTES}",
            meta.len()
        ));
    }
    check_writers(path, &meta)?;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))?;
    if bytes.len() as u64 > MAX_POLICY_BYTES {
        return Err(format!(
            "holds more than {MAX_POLICY_BYTES} bytes; a policy file may hold at most that"
        ));
    }
    Ok(Read::Bytes(bytes))
}

#[cfg(unix)]
fn check_writers(path: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let me = rustix::process::geteuid().as_raw();
    if meta.mode() & 0o002 != 0 {
        return Err(format!(
            "is world-writable (mode {:o}): anyone on this machine could change the agent's \
             configuration; make it writable by root only (chmod 644)",
            meta.mode() & 0o7777
        ));
    }
    if meta.uid() != 0 && meta.uid() != me {
        return Err(format!(
            "is owned by uid {}, neither root nor the user the agent runs as (uid {me}); \
             make root its owner (chown root)",
            meta.uid()
        ));
    }
    let dir = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    if let Some(dir) = dir
        && let Ok(d) = std::fs::metadata(&dir)
        && d.mode() & 0o002 != 0
        && d.mode() & 0o1000 == 0
    {
        return Err(format!(
            "is in {}, a directory anyone may write to: anyone could replace the file; put it \
             in a directory only root may write to",
            dir.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_writers(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn refuses_world_writable_files_and_notices_the_change() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("policy.json");
        assert!(matches!(read(&p), Ok(Read::Absent)));
        assert_eq!(fingerprint(&p), None);
        std::fs::write(&p, b"{}")?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))?;
        let before = fingerprint(&p);
        assert!(matches!(read(&p), Ok(Read::Bytes(b)) if b == b"{}"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666))?;
        assert_ne!(fingerprint(&p), before, "a chmod changes the fingerprint");
        let err = read(&p).err().unwrap_or_default();
        assert!(err.contains("world-writable"), "{err}");
        Ok(())
    }

    #[test]
    fn refuses_a_file_in_a_directory_anyone_may_write_to() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("policy.json");
        std::fs::write(&p, b"{}")?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))?;
        let err = read(&p).err().unwrap_or_default();
        assert!(err.contains("a directory anyone may write to"), "{err}");
        // Sticky, like /tmp: others cannot replace a file they do not own.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777))?;
        assert!(read(&p).is_ok());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        Ok(())
    }

    #[test]
    fn refuses_an_oversized_file() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("policy.json");
        std::fs::write(&p, vec![b' '; MAX_POLICY_BYTES as usize + 1])?;
        assert!(read(&p).is_err_and(|e| e.contains("at most")));
        Ok(())
    }
}
