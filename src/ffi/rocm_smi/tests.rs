//! ROCm SMI's safe layer without the library: PCI addresses, release layouts and the loader's words.

use super::*;

#[test]
fn bdfid_fields() {
    assert_eq!(decode_bdfid(0x11 << 8), "0000:11:00.0");
    assert_eq!(
        decode_bdfid((1 << 32) | (0x8b << 8) | (5 << 3) | 1),
        "0001:8b:05.1"
    );
    // A partition id (ROCm 6.1) is not part of the address.
    assert_eq!(decode_bdfid((3 << 28) | (0x11 << 8)), "0000:11:00.0");
}

#[test]
fn a_missing_file_is_named_and_any_other_failure_keeps_the_loader_words() {
    let attempt = |target: &str, reason: &str| Attempt {
        candidate: search::Candidate::explicit(target, "test"),
        reason: reason.into(),
    };
    let line = tried(&[
        attempt(
            "librocm_smi64.so",
            "librocm_smi64.so: cannot open shared object file: No such file or directory",
        ),
        attempt(
            "/opt/rocm/lib/librocm_smi64.so",
            "/lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.38' not found",
        ),
    ]);
    assert_eq!(
        line,
        "no librocm_smi64.so, /opt/rocm/lib/librocm_smi64.so: /lib/x86_64-linux-gnu/libc.so.6: \
         version `GLIBC_2.38' not found"
    );
}

#[test]
fn library_versions_choose_the_layout() {
    // Debian 12's ROCm 5.2.3 build reports 1.0.0; ROCm 6.4.1's library 7.6.0, 7.2.4's 7.8.0.
    assert_eq!(Layout::for_library_major(1), Layout::Rocm5);
    assert_eq!(Layout::for_library_major(5), Layout::Rocm5);
    assert_eq!(Layout::for_library_major(6), Layout::Rocm6);
    assert_eq!(Layout::for_library_major(7), Layout::Rocm6);
}
