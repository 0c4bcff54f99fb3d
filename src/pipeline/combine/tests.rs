//! Group-level tests of the combine pass.
