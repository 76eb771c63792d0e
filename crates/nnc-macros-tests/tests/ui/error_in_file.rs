nnc::net!(file = "models/broken.nn");

fn main() {}
