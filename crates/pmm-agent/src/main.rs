//! Agent worker (5703): the tick loop over the hub and the inference proxy.

fn main() {}
