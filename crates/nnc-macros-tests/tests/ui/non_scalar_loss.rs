nnc::net! {
    model m {
        dim N;
        input x: [N, 3];
        param w: [3, 2];
        loss x @ w;
    }
}

fn main() {}
