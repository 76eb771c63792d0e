//! Lowering recurses once per nested expression, through the bodies of the functions
//! it inlines; the nesting is bounded so that no program overflows the stack, on the
//! 2 MiB threads tests run on (debug builds) or a main thread.

/// `calls` functions, each `depth` unary minuses deep around a call of the previous.
fn chain(calls: usize, depth: usize) -> String {
    let mut source = String::from("fn f0(v) = v * 2;\n");
    for k in 1..=calls {
        source.push_str(&format!(
            "fn f{k}(v) = {}f{}(v);\n",
            "- ".repeat(depth),
            k - 1
        ));
    }
    source.push_str(&format!(
        "model m {{ dim N; input x: [N, 3]; param w: [3] = zeros; loss sum(f{calls}(x * w)); }}\n"
    ));
    source
}

/// Lowers `source` on a thread with a 2 MiB stack (the test harness's default).
fn lower_on_small_stack(source: String) -> Result<usize, Vec<String>> {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || match nnc_ir::compile_source(&source) {
            Ok(models) => Ok(models[0].nodes.len()),
            Err(d) => Err(d.into_iter().map(|d| d.message).collect()),
        })
        .expect("a thread")
        .join()
        .expect("no panic")
}

/// 60 nested calls of functions 250 levels deep: 15 000 levels of recursion, which
/// overflowed even an 8 MiB stack. Now an error, reported once.
#[test]
fn deep_bodies_called_deeply_are_an_error() {
    let errors = lower_on_small_stack(chain(60, 250)).expect_err("too deep");
    assert_eq!(
        errors,
        vec!["expressions nested too deeply through function calls".to_string()]
    );
}

/// Just under the limit (4 x 256 levels), the same shape lowers.
#[test]
fn deep_but_allowed() {
    // f0's body is 2 levels, each call adds 1 level for the call and `depth` for
    // its minuses, the model's expression 2: 2 + 4 * (1 + 250) + 2 = 1008.
    assert!(lower_on_small_stack(chain(4, 250)).is_ok());
    let errors = lower_on_small_stack(chain(5, 250)).expect_err("too deep");
    assert_eq!(errors.len(), 1);
}

/// Indexing recurses through the same bound: 4 functions each 250 indexes deep (a
/// whole-axis `[:, :]` makes no node but is lowered all the same)
/// lower on a 2 MiB stack, and one more function is the error, not an overflow.
#[test]
fn deep_indexing_is_bounded_too() {
    let chain = |calls: usize| {
        let mut source = String::from("fn f0(v) = v * 2;\n");
        for k in 1..=calls {
            source.push_str(&format!(
                "fn f{k}(v) = f{}(v){};\n",
                k - 1,
                "[:, :]".repeat(250)
            ));
        }
        source.push_str(&format!(
            "model m {{ dim N; input x: [N, 3]; param w: [3] = zeros; loss sum(f{calls}(x * w)); }}\n"
        ));
        source
    };
    assert!(lower_on_small_stack(chain(4)).is_ok());
    let errors = lower_on_small_stack(chain(5)).expect_err("too deep");
    assert_eq!(errors.len(), 1);
}
