//! A real terminal for the real binary: tmux, driven and read from the test.

use std::process::Command;
use std::time::{Duration, Instant};

use spine_testkit::unique_name;

/// A tmux server of this test's own (its own socket), killed at the end.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Runs `command` in a detached `width`×`height` session. The command is wrapped so that
    /// when it exits, the pane stays and shows its exit status and the terminal's modes.
    pub fn start(width: u16, height: u16, command: &str) -> Tmux {
        let version = Command::new("tmux").arg("-V").output();
        assert!(
            version.is_ok_and(|o| o.status.success()),
            "tmux is needed for this test (apt-get install tmux)"
        );
        let tmux = Tmux {
            socket: unique_name("spine-tui"),
        };
        let wrapped = format!("{command}; echo \"exit=$?\"; stty -a; sleep 600");
        let w = width.to_string();
        let h = height.to_string();
        tmux.run(&[
            "new-session",
            "-d",
            "-x",
            &w,
            "-y",
            &h,
            "-s",
            "tui",
            "sh",
            "-c",
            &wrapped,
        ]);
        tmux
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .env("LANG", "C.UTF-8")
            .output()
            .expect("tmux runs");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "tui"])
    }

    pub fn keys(&self, keys: &str) {
        self.run(&["send-keys", "-t", "tui", keys]);
    }

    pub fn resize(&self, width: u16, height: u16) {
        self.run(&[
            "resize-window",
            "-t",
            "tui",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
        ]);
    }

    /// Polls the screen until `ready` holds; fails with the last screen and `context()`.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        context: impl Fn() -> String,
        ready: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; the screen:\n{screen}\n{}",
                    context()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// Whether the shell's screen after the UI has its exit status and `stty -a`'s output down to
/// the local modes (`icanon` or `-icanon`): `speed` alone is its first line, and a screen
/// caught between the two lines made `terminal_restored` fail on a terminal that was fine.
pub fn shell_is_back(screen: &str) -> bool {
    screen.contains("exit=") && screen.contains("speed ") && screen.contains("icanon")
}

/// The terminal is back in cooked mode: canonical input and echo on.
pub fn terminal_restored(screen: &str) -> bool {
    let words: Vec<&str> = screen.split_whitespace().collect();
    words.contains(&"icanon")
        && words.contains(&"echo")
        && !words.contains(&"-icanon")
        && !words.contains(&"-echo")
}

/// The lines of a screen between the line holding `title` and the next pane title below it,
/// cut to the half of the screen the pane is in.
pub fn pane(screen: &str, title: &str) -> String {
    let lines: Vec<&str> = screen.lines().collect();
    let Some((top, line)) = lines.iter().enumerate().find(|(_, l)| l.contains(title)) else {
        return String::new();
    };
    let column = line.find(title).unwrap_or(0);
    let right = column > 10;
    let split = |l: &str| -> String {
        let chars: Vec<char> = l.chars().collect();
        let mid = lines[top]
            .chars()
            .position(|c| c == '┐' || c == '┓')
            .unwrap_or(chars.len() / 2);
        let (a, b) = chars.split_at(mid.min(chars.len()));
        let side: String = if right {
            b.iter().skip(1).collect()
        } else {
            a.iter().collect()
        };
        side
    };
    lines[top + 1..]
        .iter()
        .take_while(|l| {
            !(l.contains(" Stats") || l.contains(" Batches") || l.contains(" Micro-batches"))
                || top > lines.len() / 3
        })
        .map(|l| split(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The real `spine-tui` in an 80x24 tmux terminal, pointed at `api_url` and the topic, logging
/// to `log`.
pub fn spine_tui(api_url: &str, bootstrap: &str, topic: &str, log: &std::path::Path) -> Tmux {
    let command = format!(
        "env SPINE_API={} KAFKA_BOOTSTRAP={} TOPIC={} {} --log-file {}",
        spine_testkit::sh_quote(api_url),
        spine_testkit::sh_quote(bootstrap),
        spine_testkit::sh_quote(topic),
        spine_testkit::sh_quote(env!("CARGO_BIN_EXE_spine-tui")),
        spine_testkit::sh_quote(log),
    );
    Tmux::start(80, 24, &command)
}
