//! The legacy combiner, reimplemented: one (branch, pos, date)'s export files into rows.
