//! The rig (placeholder).
