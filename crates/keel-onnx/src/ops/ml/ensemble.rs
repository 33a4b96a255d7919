//! `TreeEnsemble` (`ai.onnx.ml` opset 5), the successor of both tree-ensemble operators:
//! interior nodes and leaves in separate lists, each tree named by its root, comparisons as
//! enumeration codes, and set membership (`BRANCH_MEMBER`) for categorical splits. At load time
//! its trees are translated into the forest `tree.rs` walks, so they get the same layouts and
//! the same aggregation as `TreeEnsembleRegressor`. The answer has the input's element type;
//! splits and weights are compared and summed in `f32`, as for the other tree operators.

use std::collections::{HashMap, HashSet};

use super::transform::PostTransform;
use super::tree::{Aggregate, Forest, LeafWeights, Mode, NodeTable, Regressor};
use crate::attrs::Attrs;
use crate::error::OnnxError;
use crate::proto::NodeProto;

/// The operator's attributes, node and leaf lists side by side.
struct Lists {
    modes: Vec<u8>,
    features: Vec<i64>,
    splits: Vec<f32>,
    yes: Vec<i64>,
    yes_is_leaf: Vec<i64>,
    no: Vec<i64>,
    no_is_leaf: Vec<i64>,
    missing: Vec<i64>,
    leaf_targets: Vec<i64>,
    leaf_weights: Vec<f32>,
}

impl Lists {
    fn read(a: &Attrs<'_>) -> Result<Self, OnnxError> {
        let lists = Self {
            modes: a.tensor_bytes("nodes_modes")?,
            features: a.ints("nodes_featureids"),
            splits: a.tensor_floats("nodes_splits")?,
            yes: a.ints("nodes_truenodeids"),
            yes_is_leaf: a.ints("nodes_trueleafs"),
            no: a.ints("nodes_falsenodeids"),
            no_is_leaf: a.ints("nodes_falseleafs"),
            missing: a.ints("nodes_missing_value_tracks_true"),
            leaf_targets: a.ints("leaf_targetids"),
            leaf_weights: a.tensor_floats("leaf_weights")?,
        };
        let n = lists.modes.len();
        let nodes = [
            lists.features.len(),
            lists.splits.len(),
            lists.yes.len(),
            lists.yes_is_leaf.len(),
            lists.no.len(),
            lists.no_is_leaf.len(),
        ];
        if n == 0 || nodes.iter().any(|&l| l != n) {
            return Err(OnnxError::Model(
                "the nodes_* attributes are empty or of different lengths".into(),
            ));
        }
        if !lists.missing.is_empty() && lists.missing.len() != n {
            return Err(OnnxError::Model(
                "nodes_missing_value_tracks_true has the wrong length".into(),
            ));
        }
        if lists.leaf_targets.len() != lists.leaf_weights.len() {
            return Err(OnnxError::Model(format!(
                "{} leaf_targetids for {} leaf_weights",
                lists.leaf_targets.len(),
                lists.leaf_weights.len()
            )));
        }
        Ok(lists)
    }

    /// Where a branch leads, as `(is_leaf, index)`, checked against the lists.
    fn child(&self, index: i64, is_leaf: i64) -> Result<(bool, usize), OnnxError> {
        let (leaf, len) = if is_leaf != 0 {
            (true, self.leaf_weights.len())
        } else {
            (false, self.modes.len())
        };
        usize::try_from(index)
            .ok()
            .filter(|&i| i < len)
            .map(|i| (leaf, i))
            .ok_or_else(|| {
                let what = if leaf { "leaf" } else { "node" };
                OnnxError::Model(format!(
                    "a branch leads to {what} {index}, which does not exist"
                ))
            })
    }
}

/// The member sets of the `BRANCH_MEMBER` nodes, in node order: runs of `membership_values`
/// ended by NaN.
fn member_sets(modes: &[u8], values: &[f32]) -> Result<Vec<Vec<f32>>, OnnxError> {
    let mut runs = values.split(|v| v.is_nan());
    let members = modes.iter().filter(|&&m| m == MEMBER).count();
    let sets: Vec<Vec<f32>> = runs.by_ref().take(members).map(<[f32]>::to_vec).collect();
    if sets.len() < members {
        return Err(OnnxError::Model(format!(
            "membership_values holds {} sets for {members} BRANCH_MEMBER nodes",
            sets.len()
        )));
    }
    Ok(sets)
}

/// `nodes_modes` code of `BRANCH_MEMBER`.
const MEMBER: u8 = 6;

fn mode(code: u8) -> Result<Mode, OnnxError> {
    Ok(match code {
        0 => Mode::Leq,
        1 => Mode::Lt,
        2 => Mode::Gte,
        3 => Mode::Gt,
        4 => Mode::Eq,
        5 => Mode::Neq,
        MEMBER => Mode::Member,
        other => return Err(OnnxError::Model(format!("unknown node mode {other}"))),
    })
}

/// Builds `TreeEnsemble` as the regressor it describes.
pub(crate) fn build(node: &NodeProto) -> Result<Regressor, OnnxError> {
    let a = Attrs::new(node);
    let targets = usize::try_from(a.int("n_targets", 0))
        .ok()
        .filter(|&t| t > 0)
        .ok_or_else(|| OnnxError::Model("n_targets must be positive".into()))?;
    let aggregate = match a.int("aggregate_function", 1) {
        0 => Aggregate::Average,
        1 => Aggregate::Sum,
        2 => Aggregate::Min,
        3 => Aggregate::Max,
        other => {
            return Err(OnnxError::Model(format!(
                "unknown aggregate_function {other}"
            )));
        }
    };
    // The codes of the operator's definition (onnxruntime 1.32 reads 1 as LOGISTIC and 2 as
    // SOFTMAX, against it).
    let transform = match a.int("post_transform", 0) {
        0 => PostTransform::None,
        1 => PostTransform::Softmax,
        2 => PostTransform::Logistic,
        3 => PostTransform::SoftmaxZero,
        4 => PostTransform::Probit,
        other => return Err(OnnxError::Model(format!("unknown post_transform {other}"))),
    };
    let lists = Lists::read(&a)?;
    let sets = member_sets(&lists.modes, &a.tensor_floats("membership_values")?)?;
    let roots = a.ints("tree_roots");
    if roots.is_empty() {
        return Err(OnnxError::Model("tree_roots is empty".into()));
    }
    let (table, leaves) = translate(&lists, &roots)?;
    Ok(Regressor {
        forest: Forest::from_table(table, leaves, targets, sets)?,
        targets,
        aggregate,
        base: Vec::new(),
        transform,
        double_for_double: true,
    })
}

/// The trees as `TreeEnsembleRegressor` would give them: tree `t` is the `t`-th root, a node
/// keeps its index as its id, and leaf `l` becomes node `nodes + l` of every tree that reaches
/// it.
fn translate(lists: &Lists, roots: &[i64]) -> Result<(NodeTable, LeafWeights), OnnxError> {
    let n = lists.modes.len();
    let leaf_id = |l: usize| (n + l) as i64;
    let mut table = NodeTable {
        trees: Vec::new(),
        ids: Vec::new(),
        features: Vec::new(),
        modes: Vec::new(),
        thresholds: Vec::new(),
        yes: Vec::new(),
        no: Vec::new(),
        missing: Vec::new(),
    };
    let mut leaves = LeafWeights {
        trees: Vec::new(),
        nodes: Vec::new(),
        ids: Vec::new(),
        values: Vec::new(),
    };
    // The index of each BRANCH_MEMBER node's set.
    let mut set_of = HashMap::new();
    for (i, &m) in lists.modes.iter().enumerate() {
        if m == MEMBER {
            let next = set_of.len() as u32;
            set_of.insert(i, next);
        }
    }
    for (t, &root) in roots.iter().enumerate() {
        let tree = t as i64;
        let (_, root) = lists.child(root, 0)?;
        let mut push_leaf = |l: usize, table: &mut NodeTable| {
            table.trees.push(tree);
            table.ids.push(leaf_id(l));
            table.features.push(0);
            table.modes.push(Mode::Leaf);
            table.thresholds.push(0.0);
            table.yes.push(0);
            table.no.push(0);
            table.missing.push(0);
            leaves.trees.push(tree);
            leaves.nodes.push(leaf_id(l));
            leaves.ids.push(lists.leaf_targets[l]);
            leaves.values.push(lists.leaf_weights[l]);
        };
        // A tree that is one leaf: a node whose branches both lead to it.
        if lists.yes_is_leaf[root] != 0
            && lists.no_is_leaf[root] != 0
            && lists.yes[root] == lists.no[root]
        {
            let (_, l) = lists.child(lists.yes[root], 1)?;
            push_leaf(l, &mut table);
            continue;
        }
        let mut seen = HashSet::new();
        let mut stack = vec![(false, root)];
        while let Some((is_leaf, i)) = stack.pop() {
            if !seen.insert((is_leaf, i)) {
                continue;
            }
            if is_leaf {
                push_leaf(i, &mut table);
                continue;
            }
            let yes = lists.child(lists.yes[i], lists.yes_is_leaf[i])?;
            let no = lists.child(lists.no[i], lists.no_is_leaf[i])?;
            let id = |(leaf, c): (bool, usize)| if leaf { leaf_id(c) } else { c as i64 };
            let mode = mode(lists.modes[i])?;
            table.trees.push(tree);
            table.ids.push(i as i64);
            table.features.push(lists.features[i]);
            table.modes.push(mode);
            table.thresholds.push(match set_of.get(&i) {
                Some(&set) => f32::from_bits(set),
                None => lists.splits[i],
            });
            table.yes.push(id(yes));
            table.no.push(id(no));
            table
                .missing
                .push(lists.missing.get(i).copied().unwrap_or(0));
            stack.push(no);
            stack.push(yes);
        }
    }
    Ok((table, leaves))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two interior nodes on feature 0 and two leaves; `yes` and `no` are (index, is_leaf).
    fn lists(yes: [(i64, i64); 2], no: [(i64, i64); 2]) -> Lists {
        Lists {
            modes: vec![0, 0],
            features: vec![0, 0],
            splits: vec![0.5, 1.5],
            yes: yes.iter().map(|b| b.0).collect(),
            yes_is_leaf: yes.iter().map(|b| b.1).collect(),
            no: no.iter().map(|b| b.0).collect(),
            no_is_leaf: no.iter().map(|b| b.1).collect(),
            missing: Vec::new(),
            leaf_targets: vec![0, 0],
            leaf_weights: vec![1.0, 2.0],
        }
    }

    fn forest(l: &Lists, roots: &[i64]) -> Result<Forest, OnnxError> {
        let (table, leaves) = translate(l, roots)?;
        Forest::from_table(table, leaves, 1, Vec::new())
    }

    #[test]
    fn translated_trees_reach_their_leaves() {
        // x <= 0.5 ? leaf 0 : (x <= 1.5 ? leaf 1 : leaf 0)
        let l = lists([(0, 1), (1, 1)], [(1, 0), (0, 1)]);
        let f = forest(&l, &[0]).unwrap();
        for (x, want) in [(0.0, 1.0), (1.0, 2.0), (2.0, 1.0)] {
            let mut got = Vec::new();
            f.leaves(&[x], |w| got.extend_from_slice(w));
            assert_eq!(got, vec![(0, want)], "x = {x}");
        }
    }

    #[test]
    fn broken_trees_are_refused() {
        // A branch to a leaf that does not exist.
        let l = lists([(0, 1), (7, 1)], [(1, 0), (0, 1)]);
        {
            let e = forest(&l, &[0]).expect_err("an error").to_string();
            assert!(e.contains("leads to leaf 7, which does not exist"), "{e}");
        }
        // Node 1 leads back to node 0: the tree has no root.
        let l = lists([(0, 1), (0, 0)], [(1, 0), (1, 1)]);
        {
            let e = forest(&l, &[0]).expect_err("an error").to_string();
            assert!(e.contains("has no root"), "{e}");
        }
        // A root that is not a node.
        let l = lists([(0, 1), (1, 1)], [(1, 0), (0, 1)]);
        {
            let e = forest(&l, &[2]).expect_err("an error").to_string();
            assert!(e.contains("leads to node 2, which does not exist"), "{e}");
        }
    }

    #[test]
    fn member_sets_are_the_runs_between_nans() {
        let sets = member_sets(&[6, 0, 6], &[1.0, 2.0, f32::NAN, 5.0, f32::NAN]).unwrap();
        assert_eq!(sets, vec![vec![1.0, 2.0], vec![5.0]]);
        {
            let e = member_sets(&[6, 6], &[1.0])
                .expect_err("an error")
                .to_string();
            assert!(e.contains("1 sets for 2 BRANCH_MEMBER nodes"), "{e}");
        }
        assert!(member_sets(&[0, 1], &[]).unwrap().is_empty());
    }
}
