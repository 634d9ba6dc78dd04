//! The Stateright model of the tidemark protocol.
