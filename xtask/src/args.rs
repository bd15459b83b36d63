//! A small command-line reader: positionals, `--flag`, `--key value`.
//!
//! Unknown leftovers are an error, so a mistyped option is never ignored.

/// The arguments after `cargo xtask`.
pub struct Args {
    rest: Vec<String>,
}

impl Args {
    /// Reads `std::env::args`, skipping the program name.
    pub fn from_env() -> Args {
        Args {
            rest: std::env::args().skip(1).collect(),
        }
    }

    /// Takes the first argument if it is not an option.
    pub fn next_positional(&mut self) -> Option<String> {
        if self
            .rest
            .first()
            .is_some_and(|a| !a.starts_with('-') || a == "-h" || a == "--help")
        {
            Some(self.rest.remove(0))
        } else {
            None
        }
    }

    /// Takes `--name` if present.
    pub fn flag(&mut self, name: &str) -> bool {
        match self.rest.iter().position(|a| a == name) {
            Some(i) => {
                self.rest.remove(i);
                true
            }
            None => false,
        }
    }

    /// Takes `--name VALUE` or `--name=VALUE` if present.
    pub fn value(&mut self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        if let Some(i) = self.rest.iter().position(|a| a.starts_with(&prefix)) {
            return Some(self.rest.remove(i)[prefix.len()..].to_string());
        }
        let i = self.rest.iter().position(|a| a == name)?;
        if i + 1 < self.rest.len() {
            self.rest.remove(i);
            Some(self.rest.remove(i))
        } else {
            None
        }
    }

    /// Fails if anything was not taken.
    pub fn finish(&self) -> Result<(), String> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(format!("unexpected arguments: {}", self.rest.join(" ")))
        }
    }
}
