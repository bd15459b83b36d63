//! The `log` backend: every record becomes one console line.
//!
//! The level comes from the command line (`loglevel=error|warn|info|
//! debug|trace`, default `info`), so a user can turn on driver tracing
//! without rebuilding.

use log::{LevelFilter, Log, Metadata, Record};

struct ConsoleLogger;

impl Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            crate::println!(
                "[{:<5} {}] {}",
                record.level(),
                record.target(),
                record.args()
            );
        }
    }

    fn flush(&self) {
        crate::console::flush();
    }
}

static LOGGER: ConsoleLogger = ConsoleLogger;

/// Installs the logger with the level named by `loglevel=` in `cmdline`.
pub fn init(cmdline: &str) {
    let level = level_from_cmdline(cmdline);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

/// The `loglevel=` option, `Info` when absent or unknown.
pub fn level_from_cmdline(cmdline: &str) -> LevelFilter {
    cmdline
        .split_ascii_whitespace()
        .find_map(|word| word.strip_prefix("loglevel="))
        .and_then(|name| name.parse().ok())
        .unwrap_or(LevelFilter::Info)
}
