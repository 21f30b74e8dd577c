//! Inference proxy (5702): OpenAI-compatible gateway for llama.cpp and TGI.

fn main() {}
