nnc::net! {
    model m {
        dim N;
        input x: [N, 3];
        param w: [4, 2];
        loss sum(x @ w);
    }
}

fn main() {}
