//! layer: placeholder until the store issue fills it.
