nnc::net!(file = "models/no_such_model.nn");

fn main() {}
