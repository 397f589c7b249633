//! Embedded Genesys Cloud simulator.
