//! The btrfs ioctls of the paths every fork and every snapshot takes: making a snapshot
//! (`BTRFS_IOC_SNAP_CREATE_V2`, optionally a member of quota groups from its first moment)
//! and setting a quota group's limit (`BTRFS_IOC_QGROUP_LIMIT`). They are what
//! `btrfs subvolume snapshot [-r] [-i QGROUP]` and `btrfs qgroup limit` do, without starting
//! a `btrfs` process each time: two processes of a fork's few, on a machine where a fork
//! costs milliseconds. Blocking calls (a snapshot waits for its transaction): run them off
//! the async workers.
#![allow(unsafe_code)]

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;

use rustix::ioctl::{opcode, Opcode, Setter, Updater};

/// `BTRFS_SUBVOL_NAME_MAX + 1`.
const NAME_LEN: usize = 4040;

/// `struct btrfs_ioctl_vol_args_v2` (include/uapi/linux/btrfs.h), 4096 bytes: the first
/// union as its `{size, qgroup_inherit}` member, the second as `name`.
#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    size: u64,
    qgroup_inherit: *const u64,
    unused: [u64; 2],
    name: [u8; NAME_LEN],
}

/// `BTRFS_IOC_SNAP_CREATE_V2 = _IOW(BTRFS_IOCTL_MAGIC, 23, struct btrfs_ioctl_vol_args_v2)`.
const SNAP_CREATE_V2: Opcode = opcode::write::<VolArgsV2>(0x94, 23);
/// `BTRFS_SUBVOL_RDONLY`.
const SUBVOL_RDONLY: u64 = 1 << 1;
/// `BTRFS_SUBVOL_QGROUP_INHERIT`.
const SUBVOL_QGROUP_INHERIT: u64 = 1 << 2;

/// `struct btrfs_qgroup_limit`.
#[repr(C)]
struct QgroupLimit {
    flags: u64,
    max_rfer: u64,
    max_excl: u64,
    rsv_rfer: u64,
    rsv_excl: u64,
}

/// `struct btrfs_ioctl_qgroup_limit_args`.
#[repr(C)]
struct QgroupLimitArgs {
    qgroupid: u64,
    lim: QgroupLimit,
}

/// `BTRFS_IOC_QGROUP_LIMIT = _IOR(BTRFS_IOCTL_MAGIC, 43, struct btrfs_ioctl_qgroup_limit_args)`
/// (read by name only: the kernel reads the argument).
const QGROUP_LIMIT: Opcode = opcode::read::<QgroupLimitArgs>(0x94, 43);
/// `BTRFS_QGROUP_LIMIT_MAX_RFER`: the limit is on referenced bytes (what `btrfs qgroup limit`
/// sets without `-e`).
const LIMIT_MAX_RFER: u64 = 1;
/// A limit of this value lifts it (the kernel's `CLEAR_VALUE`, what `btrfs qgroup limit none`
/// sends).
const CLEAR_VALUE: u64 = u64::MAX;

/// A quota group id as btrfs prints it (`LEVEL/ID`) in the kernel's form: level in the top
/// 16 bits.
pub(crate) fn qgroup_id(text: &str) -> Option<u64> {
    let (level, id) = text.split_once('/')?;
    let level: u64 = level.parse().ok()?;
    let id: u64 = id.parse().ok()?;
    (level < 1 << 16 && id < 1 << 48).then_some(level << 48 | id)
}

/// Makes `name` in directory `parent` a snapshot of the tree open as `src` (read-only when
/// `readonly`), a member of quota groups `groups` (kernel form) from its creation.
pub(crate) fn snapshot(
    src: &File,
    parent: &File,
    name: &OsStr,
    readonly: bool,
    groups: &[u64],
) -> rustix::io::Result<()> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= NAME_LEN || bytes.contains(&0) || bytes.contains(&b'/') {
        return Err(rustix::io::Errno::INVAL);
    }
    // `struct btrfs_qgroup_inherit`: flags, num_qgroups, num_ref_copies, num_excl_copies,
    // lim (5 × u64), then the groups.
    let mut inherit: Vec<u64> = vec![0, groups.len() as u64, 0, 0, 0, 0, 0, 0, 0];
    inherit.extend_from_slice(groups);
    let mut args = VolArgsV2 {
        fd: i64::from(rustix::fd::AsRawFd::as_raw_fd(src)),
        transid: 0,
        flags: if readonly { SUBVOL_RDONLY } else { 0 },
        size: 0,
        qgroup_inherit: std::ptr::null(),
        unused: [0; 2],
        name: [0; NAME_LEN],
    };
    args.name[..bytes.len()].copy_from_slice(bytes);
    if !groups.is_empty() {
        args.flags |= SUBVOL_QGROUP_INHERIT;
        args.size = (inherit.len() * std::mem::size_of::<u64>()) as u64;
        args.qgroup_inherit = inherit.as_ptr();
    }
    // SAFETY: SNAP_CREATE_V2 is the opcode of BTRFS_IOC_SNAP_CREATE_V2, whose argument is a
    // 4096-byte `struct btrfs_ioctl_vol_args_v2` the kernel copies in; `VolArgsV2` has its
    // layout (repr(C), checked by a test). `qgroup_inherit` points at `size` bytes laid out
    // as `struct btrfs_qgroup_inherit` (u64 fields, then the groups), which the kernel copies
    // in too. `args`, `inherit` and `src` live until the call returns.
    unsafe { rustix::ioctl::ioctl(parent, Setter::<SNAP_CREATE_V2, VolArgsV2>::new(args)) }
}

/// Sets the limit on referenced bytes of quota group `qgroup` (kernel form) of the file
/// system `any` is on; `None` lifts it.
pub(crate) fn set_limit(any: &File, qgroup: u64, bytes: Option<u64>) -> rustix::io::Result<()> {
    let mut args = QgroupLimitArgs {
        qgroupid: qgroup,
        lim: QgroupLimit {
            flags: LIMIT_MAX_RFER,
            max_rfer: bytes.unwrap_or(CLEAR_VALUE),
            max_excl: 0,
            rsv_rfer: 0,
            rsv_excl: 0,
        },
    };
    // SAFETY: QGROUP_LIMIT is the opcode of BTRFS_IOC_QGROUP_LIMIT, whose argument is a
    // `struct btrfs_ioctl_qgroup_limit_args` (six u64) the kernel copies in; `QgroupLimitArgs`
    // has its layout (repr(C), checked by a test) and lives until the call returns.
    unsafe {
        rustix::ioctl::ioctl(
            any,
            Updater::<QGROUP_LIMIT, QgroupLimitArgs>::new(&mut args),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_structs_have_the_kernel_sizes() {
        assert_eq!(std::mem::size_of::<VolArgsV2>(), 4096);
        assert_eq!(std::mem::size_of::<QgroupLimitArgs>(), 48);
        // _IOW('\x94', 23, 4096 bytes) and _IOR('\x94', 43, 48 bytes), as in the C headers.
        assert_eq!(SNAP_CREATE_V2 as u64, 0x5000_9417);
        assert_eq!(QGROUP_LIMIT as u64, 0x8030_942b);
    }

    #[test]
    fn quota_group_ids_read_as_the_kernel_writes_them() {
        assert_eq!(qgroup_id("1/100"), Some((1 << 48) | 100));
        assert_eq!(qgroup_id("0/257"), Some(257));
        assert_eq!(qgroup_id("x/1"), None);
        assert_eq!(qgroup_id("1"), None);
        assert_eq!(qgroup_id("65536/1"), None);
    }
}
