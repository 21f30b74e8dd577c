//! MCP hub (5701): DODO PMM tools behind the policy engine.

fn main() {}
