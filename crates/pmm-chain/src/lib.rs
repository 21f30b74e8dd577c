//! EVM I/O with alloy: pool reads, interface identification, simulation and transaction sending.
