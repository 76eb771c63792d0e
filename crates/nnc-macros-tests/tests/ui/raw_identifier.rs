// A raw identifier is Rust's way to use a keyword as a name; `.nn` keywords are
// never names.
nnc::net! {
    model r#model {
        dim N;
        input x: [N, 3];
        loss sum(x);
    }
}

fn main() {}
