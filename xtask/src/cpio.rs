//! A newc ("070701") cpio writer: the initramfs is ours, byte for byte, with fixed
//! owners and times so the same harness and suite give the same archive. Pure.

/// One archive member.
#[derive(Debug, Clone)]
pub enum Entry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    /// A character device node (the kernel needs /dev/console before /init runs).
    CharDev {
        path: String,
        mode: u32,
        major: u32,
        minor: u32,
    },
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn header(out: &mut Vec<u8>, ino: u32, mode: u32, size: usize, rdev: (u32, u32), name: &str) {
    let fields = [ino, mode, 0, 0, 1, 0, size as u32, 0, 0, rdev.0, rdev.1, name.len() as u32 + 1, 0];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

/// The archive, ending with the TRAILER!!! record.
pub fn write(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let ino = i as u32 + 1;
        match e {
            Entry::Dir { path, mode } => header(&mut out, ino, S_IFDIR | mode, 0, (0, 0), path),
            Entry::CharDev { path, mode, major, minor } => {
                header(&mut out, ino, S_IFCHR | mode, 0, (*major, *minor), path)
            }
            Entry::File { path, mode, data } => {
                header(&mut out, ino, S_IFREG | mode, data.len(), (0, 0), path);
                out.extend_from_slice(data);
                pad4(&mut out);
            }
        }
    }
    header(&mut out, 0, 0, 0, (0, 0), "TRAILER!!!");
    out
}

/// The guest's initramfs: the harness as /init, the suite, and the nodes it needs.
pub fn initramfs(harness: Vec<u8>, suite_text: &str) -> Vec<u8> {
    write(&[
        Entry::Dir { path: "dev".into(), mode: 0o755 },
        Entry::CharDev { path: "dev/console".into(), mode: 0o600, major: 5, minor: 1 },
        Entry::CharDev { path: "dev/null".into(), mode: 0o666, major: 1, minor: 3 },
        Entry::CharDev { path: "dev/zero".into(), mode: 0o666, major: 1, minor: 5 },
        Entry::Dir { path: "proc".into(), mode: 0o555 },
        Entry::Dir { path: "sys".into(), mode: 0o555 },
        Entry::Dir { path: "tmp".into(), mode: 0o1777 },
        Entry::File { path: "init".into(), mode: 0o755, data: harness },
        Entry::File { path: "suite.txt".into(), mode: 0o644, data: suite_text.as_bytes().to_vec() },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_newc() {
        let a = write(&[Entry::File { path: "init".into(), mode: 0o755, data: b"abc".to_vec() }]);
        assert!(a.starts_with(b"070701"));
        assert_eq!(a.len() % 4, 0);
        // 110-byte header + "init\0" padded to 116, then data padded to 120.
        assert_eq!(&a[110..115], b"init\0");
        assert_eq!(&a[116..119], b"abc");
        assert_eq!(&a[120..126], b"070701");
        assert!(a.windows(10).any(|w| w == b"TRAILER!!!"));
    }
}
