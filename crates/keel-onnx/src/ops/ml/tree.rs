//! `TreeEnsembleRegressor` and `TreeEnsembleClassifier`: every tree's nodes laid out in one
//! array (children by index, leaf weights in one slice), walked row by row, and the scores
//! aggregated and finalised as onnxruntime does, binary-classifier conventions included.

use std::collections::{HashMap, HashSet};

use super::transform::{PostTransform, SecondClass, two_scores};
use crate::attrs::Attrs;
use crate::error::OnnxError;
use crate::ops::{Kernel, input};
use crate::proto::NodeProto;
use crate::tensor::{Data, ElemType, Tensor, Value};

/// How a node compares its feature with its split value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    /// The feature is one of a set of values (`TreeEnsemble`'s `BRANCH_MEMBER`).
    Member,
    Leaf,
}

impl Mode {
    fn parse(s: &str) -> Result<Self, OnnxError> {
        Ok(match s {
            "BRANCH_LEQ" => Self::Leq,
            "BRANCH_LT" => Self::Lt,
            "BRANCH_GTE" => Self::Gte,
            "BRANCH_GT" => Self::Gt,
            "BRANCH_EQ" => Self::Eq,
            "BRANCH_NEQ" => Self::Neq,
            "LEAF" => Self::Leaf,
            other => return Err(OnnxError::Model(format!("unknown node mode {other:?}"))),
        })
    }
}

/// One node. For a leaf, `yes..yes + no` is its range in [`Forest::weights`].
#[derive(Clone, Copy, Debug)]
struct Node {
    feature: u32,
    threshold: f32,
    yes: u32,
    no: u32,
    mode: Mode,
    missing_yes: bool,
}

/// The trees of an ensemble.
#[derive(Debug)]
pub(super) struct Forest {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    /// Leaf weights: (target or class, value).
    weights: Vec<(u32, f32)>,
    /// The number of input columns the trees read.
    features: usize,
    /// The branch-free layout, when every branch compares the same way.
    walk: Option<Walk>,
    /// The values each [`Mode::Member`] node tests a feature against.
    sets: Vec<Vec<f32>>,
}

/// Trees walked together, a group at a time.
const GROUP: usize = 8;

/// Marks a [`Step`] whose missing (NaN) values take the `yes` branch.
const MISSING_YES: u32 = 1 << 31;

/// One node of the branch-free layout: a leaf has both children pointing to itself.
#[derive(Clone, Copy, Debug)]
struct Step {
    /// The feature read, with [`MISSING_YES`] set when NaN goes to `yes`.
    feature: u32,
    threshold: f32,
    yes: u32,
    no: u32,
}

/// The trees laid out so that a group of them is stepped together without branching on the
/// comparisons: each step of one tree is independent of the other trees' steps, so their
/// memory loads overlap instead of waiting on one another (a tree that has reached its leaf
/// stays on it). Used when every branch is `BRANCH_LEQ` (as scikit-learn's trees are) or
/// every branch is `BRANCH_LT`.
#[derive(Debug)]
struct Walk {
    /// `BRANCH_LT` rather than `BRANCH_LEQ`.
    strict: bool,
    /// By the same index as [`Forest::nodes`].
    steps: Vec<Step>,
    /// Groups of up to [`GROUP`] roots (the last one padded with its first root), with the
    /// steps the deepest of them needs and how many are real.
    groups: Vec<([u32; GROUP], u32, usize)>,
}

impl Walk {
    fn build(nodes: &[Node], roots: &[u32], depths: &[u32]) -> Option<Self> {
        let mut modes = nodes.iter().map(|n| n.mode).filter(|&m| m != Mode::Leaf);
        let strict = match modes.next() {
            None | Some(Mode::Leq) => false,
            Some(Mode::Lt) => true,
            Some(_) => return None,
        };
        let wanted = if strict { Mode::Lt } else { Mode::Leq };
        if !modes.all(|m| m == wanted) {
            return None;
        }
        let steps = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| match n.mode {
                Mode::Leaf => Step {
                    feature: 0,
                    threshold: 0.0,
                    yes: i as u32,
                    no: i as u32,
                },
                _ => Step {
                    feature: n.feature | if n.missing_yes { MISSING_YES } else { 0 },
                    threshold: n.threshold,
                    yes: n.yes,
                    no: n.no,
                },
            })
            .collect();
        let groups = roots
            .chunks(GROUP)
            .map(|chunk| {
                let mut at = [chunk[0]; GROUP];
                at[..chunk.len()].copy_from_slice(chunk);
                let deepest = chunk.iter().map(|&r| depths[r as usize]).max();
                (at, deepest.unwrap_or(0), chunk.len())
            })
            .collect();
        Some(Self {
            strict,
            steps,
            groups,
        })
    }

    #[inline(always)]
    fn step(&self, at: u32, row: &[f32]) -> u32 {
        let s = self.steps[at as usize];
        let x = row[(s.feature & !MISSING_YES) as usize];
        let branch = if self.strict {
            x < s.threshold
        } else {
            x <= s.threshold
        };
        let yes = branch | ((s.feature & MISSING_YES != 0) & x.is_nan());
        if yes { s.yes } else { s.no }
    }

    /// Calls `each` with the leaf `row` reaches in every tree, in tree order.
    fn leaves(&self, row: &[f32], mut each: impl FnMut(usize)) {
        for (roots, deepest, n) in &self.groups {
            let mut at = *roots;
            for _ in 0..*deepest {
                for a in at.iter_mut() {
                    *a = self.step(*a, row);
                }
            }
            at[..*n].iter().for_each(|&a| each(a as usize));
        }
    }
}

/// The leaf weights of an ensemble, by (tree, node): the `target_*` or `class_*` attributes.
pub(super) struct LeafWeights {
    pub(super) trees: Vec<i64>,
    pub(super) nodes: Vec<i64>,
    pub(super) ids: Vec<i64>,
    pub(super) values: Vec<f32>,
}

/// An ensemble's nodes as the `TreeEnsembleRegressor`/`TreeEnsembleClassifier` attributes give
/// them: one entry per node, named by (tree, node id), children by node id.
pub(super) struct NodeTable {
    pub(super) trees: Vec<i64>,
    pub(super) ids: Vec<i64>,
    pub(super) features: Vec<i64>,
    pub(super) modes: Vec<Mode>,
    /// The split value, or for [`Mode::Member`] the index of its set in the bits.
    pub(super) thresholds: Vec<f32>,
    pub(super) yes: Vec<i64>,
    pub(super) no: Vec<i64>,
    /// Empty, or one flag per node.
    pub(super) missing: Vec<i64>,
}

impl NodeTable {
    fn from_attrs(a: &Attrs<'_>) -> Result<Self, OnnxError> {
        Ok(Self {
            trees: a.ints("nodes_treeids"),
            ids: a.ints("nodes_nodeids"),
            features: a.ints("nodes_featureids"),
            modes: a
                .strings("nodes_modes")
                .iter()
                .map(|m| Mode::parse(m))
                .collect::<Result<_, _>>()?,
            thresholds: a.floats_or_tensor("nodes_values")?,
            yes: a.ints("nodes_truenodeids"),
            no: a.ints("nodes_falsenodeids"),
            missing: a.ints("nodes_missing_value_tracks_true"),
        })
    }
}

impl Forest {
    fn build(a: &Attrs<'_>, leaves: LeafWeights, outputs: usize) -> Result<Self, OnnxError> {
        Self::from_table(NodeTable::from_attrs(a)?, leaves, outputs, Vec::new())
    }

    /// The forest of `table`, with `sets` the member sets its [`Mode::Member`] nodes index.
    pub(super) fn from_table(
        table: NodeTable,
        leaves: LeafWeights,
        outputs: usize,
        sets: Vec<Vec<f32>>,
    ) -> Result<Self, OnnxError> {
        let NodeTable {
            trees,
            ids,
            features,
            modes,
            thresholds,
            yes,
            no,
            missing,
        } = table;
        let n = trees.len();
        let same_len = [ids.len(), features.len(), modes.len(), yes.len(), no.len()];
        if n == 0 || same_len.iter().any(|&l| l != n) || thresholds.len() != n {
            return Err(OnnxError::Model(
                "the nodes_* attributes are empty or of different lengths".into(),
            ));
        }
        if !missing.is_empty() && missing.len() != n {
            return Err(OnnxError::Model(
                "nodes_missing_value_tracks_true has the wrong length".into(),
            ));
        }
        let n_leaves = leaves.trees.len();
        if [leaves.nodes.len(), leaves.ids.len(), leaves.values.len()]
            .iter()
            .any(|&l| l != n_leaves)
        {
            return Err(OnnxError::Model(
                "the leaf weight attributes are of different lengths".into(),
            ));
        }
        let mut index = HashMap::with_capacity(n);
        for i in 0..n {
            if index.insert((trees[i], ids[i]), i).is_some() {
                return Err(OnnxError::Model(format!(
                    "tree {} has node {} twice",
                    trees[i], ids[i]
                )));
            }
        }
        let child = |i: usize, id: i64| -> Result<u32, OnnxError> {
            index
                .get(&(trees[i], id))
                .map(|&c| c as u32)
                .ok_or_else(|| OnnxError::Model(format!("tree {} has no node {id}", trees[i])))
        };
        let mut per_leaf: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
        for k in 0..n_leaves {
            let &i = index
                .get(&(leaves.trees[k], leaves.nodes[k]))
                .ok_or_else(|| {
                    OnnxError::Model(format!(
                        "a leaf weight names node {} of tree {}, which does not exist",
                        leaves.nodes[k], leaves.trees[k]
                    ))
                })?;
            let id = usize::try_from(leaves.ids[k])
                .ok()
                .filter(|&id| id < outputs)
                .ok_or_else(|| {
                    OnnxError::Model(format!(
                        "leaf weight for output {} of {outputs}",
                        leaves.ids[k]
                    ))
                })?;
            per_leaf[i].push((id as u32, leaves.values[k]));
        }
        let mut nodes = Vec::with_capacity(n);
        let mut weights = Vec::with_capacity(n_leaves);
        let mut width = 0;
        let mut is_child = vec![false; n];
        for i in 0..n {
            let mode = modes[i];
            if mode == Mode::Member && sets.get(thresholds[i].to_bits() as usize).is_none() {
                return Err(OnnxError::Model(format!(
                    "node {} of tree {} tests membership of a set that does not exist",
                    ids[i], trees[i]
                )));
            }
            let node = if mode == Mode::Leaf {
                let start = weights.len() as u32;
                weights.extend_from_slice(&per_leaf[i]);
                Node {
                    feature: 0,
                    threshold: 0.0,
                    yes: start,
                    no: per_leaf[i].len() as u32,
                    mode,
                    missing_yes: false,
                }
            } else {
                let feature = usize::try_from(features[i]).map_err(|_| {
                    OnnxError::Model(format!("negative feature id {}", features[i]))
                })?;
                width = width.max(feature + 1);
                let (y, f) = (child(i, yes[i])?, child(i, no[i])?);
                is_child[y as usize] = true;
                is_child[f as usize] = true;
                Node {
                    feature: feature as u32,
                    threshold: thresholds[i],
                    yes: y,
                    no: f,
                    mode,
                    missing_yes: missing.get(i).is_some_and(|&m| m != 0),
                }
            };
            nodes.push(node);
        }
        let mut roots: Vec<u32> = Vec::new();
        let mut rooted = HashSet::new();
        for i in 0..n {
            if !is_child[i] && rooted.insert(trees[i]) {
                roots.push(i as u32);
            }
        }
        if let Some(t) = trees.iter().find(|t| !rooted.contains(*t)) {
            return Err(OnnxError::Model(format!(
                "tree {t} has no root: every node of it is a child"
            )));
        }
        let depths = depths(&nodes, &roots)?;
        let walk = Walk::build(&nodes, &roots, &depths);
        Ok(Self {
            nodes,
            roots,
            weights,
            features: width,
            walk,
            sets,
        })
    }

    /// Calls `each` with the leaf weights `row` reaches in every tree, in tree order.
    pub(super) fn leaves<'f>(&'f self, row: &[f32], mut each: impl FnMut(&'f [(u32, f32)])) {
        match &self.walk {
            Some(walk) => walk.leaves(row, |i| each(self.leaf_weights(&self.nodes[i]))),
            None => {
                for &root in &self.roots {
                    each(self.leaf_weights(self.leaf(root, row)));
                }
            }
        }
    }

    /// The leaf `row` reaches from `root`.
    #[inline]
    fn leaf(&self, root: u32, row: &[f32]) -> &Node {
        let mut node = &self.nodes[root as usize];
        loop {
            let x = row[node.feature as usize];
            let t = node.threshold;
            let yes = match node.mode {
                Mode::Leq => x <= t,
                Mode::Lt => x < t,
                Mode::Gte => x >= t,
                Mode::Gt => x > t,
                Mode::Eq => x == t,
                Mode::Neq => x != t,
                Mode::Member => self.sets[t.to_bits() as usize].contains(&x),
                Mode::Leaf => return node,
            } || (node.missing_yes && x.is_nan());
            node = &self.nodes[if yes { node.yes } else { node.no } as usize];
        }
    }

    fn leaf_weights(&self, leaf: &Node) -> &[(u32, f32)] {
        if leaf.mode != Mode::Leaf {
            return &[];
        }
        &self.weights[leaf.yes as usize..(leaf.yes + leaf.no) as usize]
    }

    /// Reads the input as rows of at least [`Self::features`] floats.
    fn rows<'t>(
        &self,
        x: &'t Tensor,
    ) -> Result<(usize, usize, std::borrow::Cow<'t, [f32]>), OnnxError> {
        let (rows, cols) = x.rows_cols();
        if cols < self.features {
            return Err(OnnxError::Shape(format!(
                "the trees read {} features, the input has {cols}",
                self.features
            )));
        }
        Ok((rows, cols, x.to_f32()?))
    }
}

/// Every node's depth (the most steps from it to a leaf); refuses trees whose walk could loop.
fn depths(nodes: &[Node], roots: &[u32]) -> Result<Vec<u32>, OnnxError> {
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut state = vec![0u8; nodes.len()];
    let mut depth = vec![0u32; nodes.len()];
    for &root in roots {
        let mut stack = vec![(root as usize, false)];
        while let Some((i, leaving)) = stack.pop() {
            let node = nodes[i];
            if leaving {
                state[i] = 2;
                if node.mode != Mode::Leaf {
                    depth[i] = 1 + depth[node.yes as usize].max(depth[node.no as usize]);
                }
                continue;
            }
            match state[i] {
                1 => return Err(OnnxError::Model("a tree has a cycle".into())),
                2 => continue,
                _ => {}
            }
            state[i] = 1;
            stack.push((i, true));
            if node.mode != Mode::Leaf {
                for c in [node.yes as usize, node.no as usize] {
                    if state[c] == 1 {
                        return Err(OnnxError::Model("a tree has a cycle".into()));
                    }
                    stack.push((c, false));
                }
            }
        }
    }
    Ok(depth)
}

/// How the leaf values of the trees combine per target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

/// Scores of one row: a value and whether any leaf set it.
struct Scores {
    values: Vec<f32>,
    set: Vec<bool>,
}

impl Scores {
    fn new(n: usize) -> Self {
        Self {
            values: vec![0.0; n],
            set: vec![false; n],
        }
    }

    fn clear(&mut self) {
        self.values.iter_mut().for_each(|v| *v = 0.0);
        self.set.iter_mut().for_each(|s| *s = false);
    }

    fn add(&mut self, weights: &[(u32, f32)], aggregate: Aggregate) {
        for &(k, w) in weights {
            let (v, set) = (&mut self.values[k as usize], &mut self.set[k as usize]);
            *v = match aggregate {
                Aggregate::Sum | Aggregate::Average => *v + w,
                Aggregate::Min if *set && *v <= w => *v,
                Aggregate::Max if *set && *v >= w => *v,
                Aggregate::Min | Aggregate::Max => w,
            };
            *set = true;
        }
    }
}

/// `TreeEnsembleRegressor`, and `TreeEnsemble` once translated.
pub(crate) struct Regressor {
    pub(super) forest: Forest,
    pub(super) targets: usize,
    pub(super) aggregate: Aggregate,
    pub(super) base: Vec<f32>,
    pub(super) transform: PostTransform,
    /// Answer doubles for double input (`TreeEnsemble`), not always floats.
    pub(super) double_for_double: bool,
}

impl Regressor {
    pub(crate) fn build(node: &NodeProto) -> Result<Self, OnnxError> {
        let a = Attrs::new(node);
        let targets = usize::try_from(a.int_required("n_targets")?)
            .ok()
            .filter(|&t| t > 0)
            .ok_or_else(|| OnnxError::Model("n_targets must be positive".into()))?;
        let aggregate = match a.string("aggregate_function", "SUM").as_str() {
            "SUM" => Aggregate::Sum,
            "AVERAGE" => Aggregate::Average,
            "MIN" => Aggregate::Min,
            "MAX" => Aggregate::Max,
            other => {
                return Err(OnnxError::Model(format!(
                    "unknown aggregate_function {other:?}"
                )));
            }
        };
        let leaves = LeafWeights {
            trees: a.ints("target_treeids"),
            nodes: a.ints("target_nodeids"),
            ids: a.ints("target_ids"),
            values: a.floats_or_tensor("target_weights")?,
        };
        Ok(Self {
            forest: Forest::build(&a, leaves, targets)?,
            targets,
            aggregate,
            base: a.floats_or_tensor("base_values")?,
            transform: PostTransform::parse(&a.string("post_transform", "NONE"))?,
            double_for_double: false,
        })
    }

    fn finish(&self, scores: &mut Scores, out: &mut [f32]) {
        let trees = self.forest.roots.len() as f32;
        if self.targets == 1 {
            // onnxruntime's single-target path: the first weight of each leaf, one base value.
            let origin = if self.base.len() == 1 {
                self.base[0]
            } else {
                0.0
            };
            let s = scores.values[0];
            let v = match self.aggregate {
                Aggregate::Sum => s + origin,
                Aggregate::Average => s / trees + origin,
                Aggregate::Min | Aggregate::Max if scores.set[0] => s + origin,
                Aggregate::Min | Aggregate::Max => origin,
            };
            out[0] = if self.transform == PostTransform::Probit {
                super::transform::probit(v)
            } else {
                v
            };
            return;
        }
        let use_base = self.base.len() == self.targets;
        for (k, o) in out.iter_mut().enumerate() {
            let base = if use_base { self.base[k] } else { 0.0 };
            let s = scores.values[k];
            *o = match self.aggregate {
                Aggregate::Sum => s + base,
                Aggregate::Average => s / trees + base,
                Aggregate::Min | Aggregate::Max => base + if scores.set[k] { s } else { 0.0 },
            };
        }
        self.transform.apply(out);
    }
}

impl Kernel for Regressor {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let (rows, cols, data) = self.forest.rows(x)?;
        let mut out = vec![0.0f32; rows * self.targets];
        let mut scores = Scores::new(self.targets);
        for (r, o) in out.chunks_exact_mut(self.targets).enumerate() {
            let row = &data[r * cols..(r + 1) * cols];
            scores.clear();
            self.forest.leaves(row, |w| {
                if self.targets == 1 {
                    scores.add(&w[..w.len().min(1)], self.aggregate);
                } else {
                    scores.add(w, self.aggregate);
                }
            });
            self.finish(&mut scores, o);
        }
        let shape = vec![rows, self.targets];
        if self.double_for_double && x.elem_type() == ElemType::Double {
            let out = out.into_iter().map(f64::from).collect();
            return Ok(vec![Tensor::new(shape, Data::Double(out))?.into()]);
        }
        Ok(vec![Tensor::float(shape, out)?.into()])
    }
}

/// A classifier's labels.
#[derive(Clone, Debug)]
pub(crate) enum Labels {
    Int64(Vec<i64>),
    String(Vec<String>),
}

impl Labels {
    pub(crate) fn from_attrs(a: &Attrs<'_>, ints: &str, strings: &str) -> Result<Self, OnnxError> {
        let s = a.strings(strings);
        let i = a.ints(ints);
        match (s.is_empty(), i.is_empty()) {
            (false, true) => Ok(Self::String(s)),
            (true, false) => Ok(Self::Int64(i)),
            _ => Err(OnnxError::Model(format!(
                "a classifier needs exactly one of {ints} and {strings}"
            ))),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Int64(l) => l.len(),
            Self::String(l) => l.len(),
        }
    }

    /// A tensor of labels from per-row choices.
    pub(crate) fn tensor(&self, picks: &[Pick]) -> Result<Tensor, OnnxError> {
        let data = match self {
            Self::Int64(l) => Data::Int64(
                picks
                    .iter()
                    .map(|p| match *p {
                        Pick::Class(i) => l[i],
                        Pick::Literal(v) => v,
                    })
                    .collect(),
            ),
            Self::String(l) => Data::String(
                picks
                    .iter()
                    .map(|p| match *p {
                        Pick::Class(i) => l[i].clone(),
                        Pick::Literal(v) => v.to_string(),
                    })
                    .collect(),
            ),
        };
        Tensor::new(vec![picks.len()], data)
    }
}

/// The label a row gets: a class by index, or onnxruntime's literal 0 or 1 where a binary
/// model's labels do not say which class is which.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Pick {
    Class(usize),
    Literal(i64),
}

/// `TreeEnsembleClassifier`.
pub(crate) struct Classifier {
    forest: Forest,
    labels: Labels,
    base: Vec<f32>,
    transform: PostTransform,
    /// Two classes, all weights for one of them.
    binary: bool,
    all_positive: bool,
}

impl Classifier {
    pub(crate) fn build(node: &NodeProto) -> Result<Self, OnnxError> {
        let a = Attrs::new(node);
        let labels = Labels::from_attrs(&a, "classlabels_int64s", "classlabels_strings")?;
        let leaves = LeafWeights {
            trees: a.ints("class_treeids"),
            nodes: a.ints("class_nodeids"),
            ids: a.ints("class_ids"),
            values: a.floats_or_tensor("class_weights")?,
        };
        let mut classes_used = leaves.ids.clone();
        classes_used.sort_unstable();
        classes_used.dedup();
        let all_positive = leaves.values.iter().all(|&w| w >= 0.0);
        let n = labels.len();
        Ok(Self {
            forest: Forest::build(&a, leaves, n)?,
            binary: n == 2 && classes_used.len() == 1,
            all_positive,
            labels,
            base: a.floats_or_tensor("base_values")?,
            transform: PostTransform::parse(&a.string("post_transform", "NONE"))?,
        })
    }

    /// Final scores and the label of one row, as onnxruntime's classifier aggregator does.
    fn finish(&self, s: &mut Scores, out: &mut [f32]) -> Pick {
        let n = self.labels.len();
        if n != 2 {
            for (k, &b) in self.base.iter().enumerate().take(n) {
                s.values[k] = if s.set[k] { s.values[k] + b } else { b };
                s.set[k] = true;
            }
            let mut best: Option<usize> = None;
            for k in 0..n {
                if s.set[k] && best.is_none_or(|b| s.values[k] > s.values[b]) {
                    best = Some(k);
                }
            }
            out.copy_from_slice(&s.values[..n]);
            if n >= 2 {
                self.transform.apply(out);
            }
            return Pick::Class(best.unwrap_or(0));
        }
        let mut second = None;
        let mut single = false;
        match self.base.len() {
            2 if s.set[1] => {
                s.values[1] = self.base[1] + s.values[0];
                s.values[0] = -s.values[1];
            }
            2 => {
                s.values[1] += self.base[1];
                s.values[0] += self.base[0];
            }
            1 => {
                s.values[0] += self.base[0];
                single = !s.set[1];
            }
            0 => {
                second = Some(SecondClass::Mirror);
                single = !s.set[1];
            }
            _ => {}
        }
        let positive = if !single && s.set[1] {
            s.values[1]
        } else if s.set[0] {
            s.values[0]
        } else {
            0.0
        };
        let pick = if self.binary {
            let (wins, kind) = if self.all_positive {
                (positive > 0.5, SecondClass::Complement)
            } else {
                (positive > 0.0, SecondClass::Mirror)
            };
            second = Some(kind);
            Pick::Class(usize::from(wins))
        } else if matches!(self.labels, Labels::String(_)) {
            // onnxruntime indexes string labels here.
            Pick::Class(usize::from(positive > 0.0))
        } else {
            Pick::Literal(i64::from(positive > 0.0))
        };
        if single {
            match second {
                Some(kind) => out.copy_from_slice(&two_scores(s.values[0], self.transform, kind)),
                None => {
                    out[0] = s.values[0];
                    out[1] = 0.0;
                }
            }
        } else {
            out.copy_from_slice(&s.values[..2]);
            self.transform.apply(out);
        }
        pick
    }
}

impl Kernel for Classifier {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let (rows, cols, data) = self.forest.rows(x)?;
        let n = self.labels.len();
        let mut out = vec![0.0f32; rows * n];
        let mut picks = Vec::with_capacity(rows);
        let mut scores = Scores::new(n);
        for (r, o) in out.chunks_exact_mut(n).enumerate() {
            let row = &data[r * cols..(r + 1) * cols];
            scores.clear();
            self.forest.leaves(row, |w| scores.add(w, Aggregate::Sum));
            picks.push(self.finish(&mut scores, o));
        }
        Ok(vec![
            self.labels.tensor(&picks)?.into(),
            Tensor::float(vec![rows, n], out)?.into(),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (no test dependency needed for a few numbers).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) as u32
        }
    }

    /// Appends a random tree of at most `depth` levels; returns its root.
    fn grow(nodes: &mut Vec<Node>, rng: &mut Lcg, depth: u32, mode: Mode, leaves: &mut u32) -> u32 {
        let at = nodes.len() as u32;
        if depth == 0 || rng.next().is_multiple_of(5) {
            nodes.push(Node {
                feature: 0,
                threshold: 0.0,
                yes: *leaves,
                no: 1,
                mode: Mode::Leaf,
                missing_yes: false,
            });
            *leaves += 1;
            return at;
        }
        nodes.push(Node {
            feature: rng.next() % 6,
            threshold: (rng.next() % 9) as f32 - 4.0,
            yes: 0,
            no: 0,
            mode,
            missing_yes: rng.next().is_multiple_of(2),
        });
        let yes = grow(nodes, rng, depth - 1, mode, leaves);
        let no = grow(nodes, rng, depth - 1, mode, leaves);
        nodes[at as usize].yes = yes;
        nodes[at as usize].no = no;
        at
    }

    #[test]
    fn grouped_branch_free_walk_reaches_the_leaves_of_the_node_by_node_walk() {
        for (mode, seed) in [(Mode::Leq, 1), (Mode::Lt, 2), (Mode::Leq, 3)] {
            let mut rng = Lcg(seed);
            let (mut nodes, mut roots, mut leaves) = (Vec::new(), Vec::new(), 0);
            // 19 trees: two full groups and a padded one, of uneven depths.
            for t in 0..19 {
                roots.push(grow(&mut nodes, &mut rng, 1 + t % 9, mode, &mut leaves));
            }
            let weights = (0..leaves).map(|l| (0, l as f32)).collect();
            let depths = depths(&nodes, &roots).unwrap();
            let walk = Walk::build(&nodes, &roots, &depths).expect("one branch mode");
            assert_eq!(walk.groups.len(), 3);
            let forest = Forest {
                nodes,
                roots,
                weights,
                features: 6,
                walk: None,
                sets: Vec::new(),
            };
            for _ in 0..500 {
                let row: Vec<f32> = (0..6)
                    .map(|_| match rng.next() % 10 {
                        0 => f32::NAN,
                        v => v as f32 - 5.0,
                    })
                    .collect();
                let mut fast = Vec::new();
                walk.leaves(&row, |i| fast.push(i));
                let slow: Vec<usize> = forest
                    .roots
                    .iter()
                    .map(|&r| {
                        let leaf = forest.leaf(r, &row);
                        forest
                            .nodes
                            .iter()
                            .position(|n| std::ptr::eq(n, leaf))
                            .unwrap()
                    })
                    .collect();
                assert_eq!(fast, slow, "row {row:?}");
            }
        }
    }

    #[test]
    fn mixed_branch_modes_keep_the_node_by_node_walk() {
        let mut rng = Lcg(7);
        let (mut nodes, mut leaves) = (Vec::new(), 0);
        let a = grow(&mut nodes, &mut rng, 3, Mode::Leq, &mut leaves);
        let b = grow(&mut nodes, &mut rng, 3, Mode::Gt, &mut leaves);
        let depths = depths(&nodes, &[a, b]).unwrap();
        assert!(Walk::build(&nodes, &[a, b], &depths).is_none());
        // A forest of single leaves walks no steps at all.
        let leaf = vec![nodes[nodes.len() - 1]];
        let walk = Walk::build(&leaf, &[0], &[0]).unwrap();
        let mut reached = Vec::new();
        walk.leaves(&[], |i| reached.push(i));
        assert_eq!(reached, vec![0]);
    }
}
