//! nnc facade
