//! Small pieces of SQL text shared by the modules that build statements.

/// `($1, $2, ...), ($n+1, ...)`: placeholders for `rows` rows of `cols` values.
pub(crate) fn values_placeholders(rows: usize, cols: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("${}", r * cols + c + 1));
        }
        out.push(')');
    }
    out
}
