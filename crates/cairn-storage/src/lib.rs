//! Placeholder; filled in by the sandbox foundation work.
