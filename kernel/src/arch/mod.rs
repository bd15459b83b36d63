//! Architecture selection: the one place that picks the arch module.

#[cfg(target_arch = "x86_64")]
pub mod x86_64;

#[cfg(not(target_arch = "x86_64"))]
compile_error!("Paravane supports only x86_64 guests so far");
