//! The master's merged output stream and the small text helpers of the
//! supervisor (crash log times, exit descriptions, last output lines).

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::process::ExitStatus;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::SystemTime;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use super::TAIL_LINES;

static STDOUT_IS_TERMINAL: LazyLock<bool> = LazyLock::new(|| std::io::stdout().is_terminal());

/// `[server-id] ` padded to `width`; in a terminal, coloured per server
/// (one of six colours picked by a hash of the id) so interleaved lines
/// are easy to tell apart.
pub(super) fn line_prefix(id: &str, width: usize) -> String {
    let plain = format!("[{id:<width$}] ");
    if !*STDOUT_IS_TERMINAL {
        return plain;
    }
    let colour = 31 + shaddock::hash::crc32_pomelo(id).unsigned_abs() % 6;
    format!("\u{1b}[{colour}m{plain}\u{1b}[0m")
}

/// Longest line kept from a server's output; the rest of a longer line is
/// dropped (a runaway writer must not grow the master's memory).
const MAX_LINE: usize = 16 * 1024;

/// Copies a server's stdout or stderr into the merged stream, one
/// `[server-id] line` at a time, and keeps its last lines for error reports.
pub(super) async fn pipe(
    reader: impl AsyncRead + Unpin,
    prefix: String,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    let mut cut = false;
    loop {
        let (consumed, end) = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(buf) => match buf.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    take(&mut line, &buf[..i], &mut cut);
                    (i + 1, true)
                }
                None => {
                    take(&mut line, buf, &mut cut);
                    (buf.len(), false)
                }
            },
        };
        reader.consume(consumed);
        if end {
            emit(&prefix, &line, cut, &tail);
            line.clear();
            cut = false;
        }
    }
    if !line.is_empty() {
        emit(&prefix, &line, cut, &tail);
    }
}

fn take(line: &mut Vec<u8>, bytes: &[u8], cut: &mut bool) {
    let room = MAX_LINE.saturating_sub(line.len());
    if bytes.len() > room {
        *cut = true;
    }
    line.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

fn emit(prefix: &str, line: &[u8], cut: bool, tail: &Mutex<VecDeque<String>>) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    let marker = if cut { " […line cut]" } else { "" };
    // Colours help in a terminal; in logs/master.log they are noise.
    if *STDOUT_IS_TERMINAL {
        out_line(&format!("{prefix}{text}{marker}"));
    } else {
        out_line(&format!("{prefix}{}{marker}", strip_ansi(text)));
    }
    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
    if t.len() == TAIL_LINES {
        t.pop_front();
    }
    t.push_back(strip_ansi(text));
}

/// One line of the merged stream on stdout. Unlike `println!`, a closed
/// stdout (`shaddock start | head`) is ignored instead of panicking.
pub(crate) fn out_line(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

/// What to show of a server's last output when it failed: its last
/// `error: ...` line if it printed one (what `shaddock::launch` prints on a
/// failed start), else its last five lines.
pub(super) fn tail_text(tail: &Mutex<VecDeque<String>>) -> String {
    let t = tail.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(error) = t
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.to_ascii_lowercase().starts_with("error"))
    {
        return error.to_string();
    }
    t.iter()
        .rev()
        .take(5)
        .rev()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

pub(super) fn describe_exit(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return format!("was killed by signal {sig}");
        }
    }
    match status.code() {
        Some(code) => format!("exited with code {code}"),
        None => "exited".to_string(),
    }
}

/// Removes ANSI colour codes so error reports stay readable.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SSZ` for the crash log (no date crate needed).
pub(super) fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colours() {
        assert_eq!(strip_ansi("\u{1b}[32mINFO\u{1b}[0m hi"), "INFO hi");
    }

    #[tokio::test]
    async fn pipe_splits_lines_and_cuts_runaway_ones() {
        let mut input = b"first\r\nsecond\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE * 3));
        input.extend_from_slice(b"\nlast");
        let tail: Arc<Mutex<VecDeque<String>>> = Arc::default();
        pipe(&input[..], "[t] ".into(), tail.clone()).await;
        let t = tail.lock().unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(t[0], "first");
        assert_eq!(t[1], "second");
        assert_eq!(t[2].len(), MAX_LINE);
        assert_eq!(t[3], "last");
    }

    #[test]
    fn tail_prefers_the_error_line() {
        let tail = Mutex::new(VecDeque::from(vec![
            "2026 ERROR shaddock::launch: server failed: port".to_string(),
            "error: server failed: port".to_string(),
            "".to_string(),
        ]));
        assert_eq!(tail_text(&tail), "error: server failed: port");
        let tail = Mutex::new(VecDeque::from(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(tail_text(&tail), "a | b");
    }

    #[test]
    fn utc_format_shape() {
        let s = utc_now();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.starts_with("20"), "{s}");
    }
}
