//! The two btrfs ioctls of the quota set-up that the `btrfs` command of btrfs-progs 6.2
//! (Debian 12) cannot make:
//!
//! - turning **simple quotas** on (`BTRFS_IOC_QUOTA_CTL` with
//!   `BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA`, Linux 6.7 or newer; `btrfs quota enable
//!   --simple` arrived in btrfs-progs 6.7);
//! - the file system's id (`BTRFS_IOC_FS_INFO`), which names its directory in
//!   `/sys/fs/btrfs`, where the kernel shows each quota group's usage and limits.
//!
//! Limits are set by [`crate::subvol_ctl`]; quota groups are made and joined through the
//! `btrfs` command, see [`crate::quota`]. Besides these, `compressed`'s encoded write and
//! `subvol_ctl`'s snapshot and limit are the crate's only `unsafe` calls.
#![allow(unsafe_code)]

use std::fs::File;

use rustix::ioctl::{opcode, Opcode, Updater};

/// `struct btrfs_ioctl_quota_ctl_args` (include/uapi/linux/btrfs.h).
#[repr(C)]
struct QuotaCtlArgs {
    cmd: u64,
    status: u64,
}

/// `BTRFS_IOC_QUOTA_CTL = _IOWR(BTRFS_IOCTL_MAGIC, 40, struct btrfs_ioctl_quota_ctl_args)`.
const QUOTA_CTL: Opcode = opcode::read_write::<QuotaCtlArgs>(0x94, 40);
/// `BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA`.
const ENABLE_SIMPLE_QUOTA: u64 = 4;

/// `struct btrfs_ioctl_fs_info_args` (1024 bytes).
#[repr(C)]
struct FsInfoArgs {
    max_id: u64,
    num_devices: u64,
    fsid: [u8; 16],
    nodesize: u32,
    sectorsize: u32,
    clone_alignment: u32,
    csum_type: u16,
    csum_size: u16,
    flags: u64,
    generation: u64,
    metadata_uuid: [u8; 16],
    reserved: [u8; 944],
}

/// `BTRFS_IOC_FS_INFO = _IOR(BTRFS_IOCTL_MAGIC, 31, struct btrfs_ioctl_fs_info_args)`.
const FS_INFO: Opcode = opcode::read::<FsInfoArgs>(0x94, 31);

/// Turns simple quotas on for the btrfs file system of `dir` (a directory on it, opened
/// read-only). A no-op when they are on already. `EINVAL` on kernels without them.
pub(crate) fn enable_simple_quotas(dir: &File) -> rustix::io::Result<()> {
    let mut args = QuotaCtlArgs {
        cmd: ENABLE_SIMPLE_QUOTA,
        status: 0,
    };
    // SAFETY: QUOTA_CTL is the opcode of BTRFS_IOC_QUOTA_CTL, whose argument is a
    // `struct btrfs_ioctl_quota_ctl_args`: two u64, which `QuotaCtlArgs` lays out the same
    // way (repr(C)). The kernel reads and writes only those 16 bytes, and `args` lives until
    // the call returns.
    unsafe { rustix::ioctl::ioctl(dir, Updater::<QUOTA_CTL, QuotaCtlArgs>::new(&mut args)) }
}

/// The id (fsid) of the btrfs file system of `dir`, as `/sys/fs/btrfs` names it:
/// `af01a2fa-d05c-48e4-8be3-05b15bcc064c`.
pub(crate) fn fsid(dir: &File) -> rustix::io::Result<String> {
    // The kernel reads `flags` from the argument, so it starts zeroed (no extra fields asked).
    let mut args = FsInfoArgs {
        max_id: 0,
        num_devices: 0,
        fsid: [0; 16],
        nodesize: 0,
        sectorsize: 0,
        clone_alignment: 0,
        csum_type: 0,
        csum_size: 0,
        flags: 0,
        generation: 0,
        metadata_uuid: [0; 16],
        reserved: [0; 944],
    };
    // SAFETY: FS_INFO is the opcode of BTRFS_IOC_FS_INFO, whose argument is a 1024-byte
    // `struct btrfs_ioctl_fs_info_args` that the kernel copies in (for `flags`) and writes
    // back; `FsInfoArgs` has its layout (repr(C), the same fields, 1024 bytes, checked by a
    // test), and `args` lives until the call returns.
    unsafe { rustix::ioctl::ioctl(dir, Updater::<FS_INFO, FsInfoArgs>::new(&mut args))? };
    Ok(uuid_text(&args.fsid))
}

/// `8-4-4-4-12` lowercase hex, the way the kernel prints a UUID (`%pU`).
fn uuid_text(b: &[u8; 16]) -> String {
    let hex: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        hex[0..4].concat(),
        hex[4..6].concat(),
        hex[6..8].concat(),
        hex[8..10].concat(),
        hex[10..16].concat()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_structs_have_the_kernel_sizes() {
        assert_eq!(std::mem::size_of::<QuotaCtlArgs>(), 16);
        assert_eq!(std::mem::size_of::<FsInfoArgs>(), 1024);
        // _IOWR('\x94', 40, 16 bytes) and _IOR('\x94', 31, 1024 bytes), as in the C headers.
        assert_eq!(QUOTA_CTL as u64, 0xc010_9428);
        assert_eq!(FS_INFO as u64, 0x8400_941f);
    }

    #[test]
    fn uuids_print_like_the_kernel() {
        let b = [
            0xaf, 0x01, 0xa2, 0xfa, 0xd0, 0x5c, 0x48, 0xe4, 0x8b, 0xe3, 0x05, 0xb1, 0x5b, 0xcc,
            0x06, 0x4c,
        ];
        assert_eq!(uuid_text(&b), "af01a2fa-d05c-48e4-8be3-05b15bcc064c");
    }
}
