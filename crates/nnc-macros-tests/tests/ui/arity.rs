nnc::net! {
    fn dense(x, w, b) = x @ w + b;
    model m {
        dim N;
        input x: [N, 3];
        param w: [3, 2];
        loss sum(dense(x, w));
    }
}

fn main() {}
