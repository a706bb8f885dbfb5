//! The demo's terminal, on crossterm: keys one at a time (raw mode) when stdin is a
//! terminal, lines otherwise; the screen cleared once and each frame drawn over the last
//! in place, without flicker.
//!
//! In raw mode the terminal sends Ctrl-C as a key rather than a signal, so Ctrl-C and
//! Ctrl-D are read as `q`; and it no longer turns `\n` into a new line at column 0, so
//! frames end their lines with `\r\n`.

use std::io::{BufRead, IsTerminal, Write};

use crossterm::cursor::MoveTo;
use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::terminal::{self, Clear, ClearType};
use crossterm::{ExecutableCommand, QueueableCommand};
use tokio::sync::mpsc;

/// A key pressed (on a terminal) or a line typed (stdin piped).
pub(super) enum Key {
    /// Enter or `c`: crash a node now.
    Crash,
    /// `r`: restart the crashed nodes now.
    Restart,
    /// `q`, Ctrl-C or Ctrl-D: quit.
    Quit,
    /// Anything else.
    Unknown(String),
}

impl Key {
    /// A typed line (or one character), as a key.
    fn of(text: &str) -> Key {
        match text {
            "" | "c" => Key::Crash,
            "r" => Key::Restart,
            "q" => Key::Quit,
            other => Key::Unknown(other.to_owned()),
        }
    }

    /// A key event from a terminal in raw mode; `None` for releases and repeats.
    fn of_event(event: KeyEvent) -> Option<Key> {
        if event.kind != KeyEventKind::Press {
            return None;
        }
        let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
        Some(match event.code {
            KeyCode::Char('c' | 'd') if ctrl => Key::Quit,
            KeyCode::Enter => Key::Crash,
            // What a terminal sends for NUL (Ctrl-Space, or a pseudo-terminal's filler).
            KeyCode::Null => return None,
            KeyCode::Char(c) => Key::of(&c.to_string()),
            other => Key::Unknown(other.to_string()),
        })
    }
}

/// The terminal in raw mode (keys one at a time, no echo) while this lives, when stdin
/// is a terminal; restored when dropped, however the demo ends.
pub(super) struct SingleKeys {
    active: bool,
}

impl SingleKeys {
    /// Raw mode if stdin is a terminal and it can be set; otherwise nothing changes.
    pub(super) fn enter() -> SingleKeys {
        let active = std::io::stdin().is_terminal() && terminal::enable_raw_mode().is_ok();
        SingleKeys { active }
    }

    /// Whether keys arrive one by one.
    pub(super) fn active(&self) -> bool {
        self.active
    }
}

impl Drop for SingleKeys {
    fn drop(&mut self) {
        if self.active {
            let _ = terminal::disable_raw_mode();
        }
    }
}

/// Reads stdin on a plain thread (not the runtime's blocking pool, whose shutdown would
/// wait for a read that never ends): key events when `single` (a terminal in raw mode),
/// else one line at a time (piped input).
pub(super) fn read_keys(keys: mpsc::UnboundedSender<Key>, single: bool) {
    std::thread::spawn(move || {
        if single {
            while let Ok(event) = crossterm::event::read() {
                let Event::Key(event) = event else { continue };
                let Some(key) = Key::of_event(event) else {
                    continue;
                };
                if keys.send(key).is_err() {
                    break;
                }
            }
        } else {
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                if keys.send(Key::of(line.trim())).is_err() {
                    break;
                }
            }
        }
    });
}

/// Clears the whole screen, once, before the first frame.
pub(super) fn clear_screen() {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.execute(Clear(ClearType::All));
}

/// Draws `frame` from the top left over the last one: each line overwrites the old and
/// clears its rest, then everything below is cleared (no flicker from clearing first).
pub(super) fn draw_frame(frame: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.queue(MoveTo(0, 0));
    for line in frame.lines() {
        let _ = write!(stdout, "{line}");
        let _ = stdout.queue(Clear(ClearType::UntilNewLine));
        let _ = write!(stdout, "\r\n");
    }
    let _ = stdout.queue(Clear(ClearType::FromCursorDown));
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> Option<Key> {
        Key::of_event(KeyEvent::new(code, modifiers))
    }

    #[test]
    fn keys_map_to_what_the_help_says() {
        let none = KeyModifiers::NONE;
        assert!(matches!(press(KeyCode::Enter, none), Some(Key::Crash)));
        assert!(matches!(press(KeyCode::Char('c'), none), Some(Key::Crash)));
        assert!(matches!(
            press(KeyCode::Char('r'), none),
            Some(Key::Restart)
        ));
        assert!(matches!(press(KeyCode::Char('q'), none), Some(Key::Quit)));
        let ctrl = KeyModifiers::CONTROL;
        assert!(matches!(press(KeyCode::Char('c'), ctrl), Some(Key::Quit)));
        assert!(matches!(press(KeyCode::Char('d'), ctrl), Some(Key::Quit)));
        assert!(matches!(press(KeyCode::Char('x'), none), Some(Key::Unknown(k)) if k == "x"));
        let release = KeyEvent::new_with_kind(KeyCode::Char('q'), none, KeyEventKind::Release);
        assert!(Key::of_event(release).is_none());
        assert!(matches!(Key::of(""), Key::Crash));
    }
}
