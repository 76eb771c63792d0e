nnc::net! {
    fn f(x) = g(x) + 1;
    fn g(x) = f(x) * 2;
    model m {
        param w: [3];
        loss sum(f(w));
    }
}

fn main() {}
