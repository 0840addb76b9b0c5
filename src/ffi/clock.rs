//! The local wall-clock time as nccl-tests prints it ("%Y-%m-%d %H:%M:%S" of localtime), for the
//! documents written in its format: libc's localtime_r and strftime, which follow TZ and
//! /etc/localtime as nccl-tests does.

/// `unix_s` (seconds since the epoch) as local time, "%Y-%m-%d %H:%M:%S"; None if libc cannot say.
pub fn local_time(unix_s: f64) -> Option<String> {
    let seconds = unix_s.floor() as libc::time_t;
    // SAFETY: localtime_r writes the broken-down time into `tm`, which we own and which outlives the
    // call; strftime writes at most `buffer.len()` bytes into `buffer` and returns how many it wrote
    // (0 when the result did not fit), never reading past the format's NUL.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&seconds, &mut tm).is_null() {
            return None;
        }
        let mut buffer = [0u8; 64];
        let format = c"%Y-%m-%d %H:%M:%S";
        let written = libc::strftime(
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            format.as_ptr(),
            &tm,
        );
        (written > 0).then(|| String::from_utf8_lossy(&buffer[..written]).into_owned())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_like_nccl_tests() {
        let text = super::local_time(1_767_323_045.7).unwrap();
        // The hour depends on the machine's zone; the shape does not.
        assert_eq!(text.len(), 19, "{text}");
        assert_eq!(&text[4..5], "-");
        assert_eq!(&text[13..14], ":");
        assert!(text.starts_with("2026-01-0"), "{text}");
    }
}
