//! keel's own graph executor: nodes in topological order, each a kernel built at load time,
//! values in numbered slots that constants and inputs occupy by reference and that are freed
//! after their last reader.

use std::collections::HashMap;

use crate::error::OnnxError;
use crate::ops::{self, Kernel, Opsets};
use crate::proto::{GraphProto, NodeProto};
use crate::tensor::{Tensor, Value};

struct Step {
    kernel: Box<dyn Kernel>,
    inputs: Vec<Option<usize>>,
    outputs: Vec<usize>,
    name: String,
    op: String,
    /// Slots no later step reads: dropped after this one.
    frees: Vec<usize>,
}

/// A graph every node of which has a keel kernel.
pub(crate) struct NativeGraph {
    steps: Vec<Step>,
    constants: Vec<(usize, Value)>,
    inputs: Vec<usize>,
    outputs: Vec<usize>,
    slots: usize,
}

enum Slot<'a> {
    Empty,
    Borrowed(&'a Value),
    Owned(Value),
}

impl Slot<'_> {
    fn get(&self) -> Option<&Value> {
        match self {
            Self::Empty => None,
            Self::Borrowed(v) => Some(v),
            Self::Owned(v) => Some(v),
        }
    }
}

/// Orders nodes so that each comes after the producers of its inputs.
pub(crate) fn topological<'g>(
    graph: &'g GraphProto,
    known: impl Iterator<Item = &'g str>,
) -> Result<Vec<&'g NodeProto>, OnnxError> {
    let mut available: std::collections::HashSet<&str> = known.collect();
    available.insert("");
    let mut pending: Vec<&NodeProto> = graph.node.iter().collect();
    let mut order = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|node| {
            if node.input.iter().all(|i| available.contains(i.as_str())) {
                available.extend(node.output.iter().map(String::as_str));
                order.push(*node);
                false
            } else {
                true
            }
        });
        if pending.len() == before {
            let node = pending[0];
            let missing = node
                .input
                .iter()
                .find(|i| !available.contains(i.as_str()))
                .cloned()
                .unwrap_or_default();
            return Err(OnnxError::Model(format!(
                "node {:?} ({}) reads {missing:?}, which nothing produces",
                node.name, node.op_type
            )));
        }
    }
    Ok(order)
}

impl NativeGraph {
    /// Builds kernels for every node; `Err(Unsupported)` names the operators keel lacks.
    pub(crate) fn build(
        graph: &GraphProto,
        inputs: &[String],
        opsets: Opsets,
    ) -> Result<Self, OnnxError> {
        let mut slot_of: HashMap<String, usize> = HashMap::new();
        let slot = |name: &str, slot_of: &mut HashMap<String, usize>| -> usize {
            let next = slot_of.len();
            *slot_of.entry(name.to_string()).or_insert(next)
        };
        let mut constants = Vec::new();
        for init in &graph.initializer {
            if inputs.contains(&init.name) {
                continue;
            }
            let s = slot(&init.name, &mut slot_of);
            constants.push((s, Value::Tensor(Tensor::from_proto(init)?)));
        }
        let input_slots: Vec<usize> = inputs.iter().map(|n| slot(n, &mut slot_of)).collect();
        let known: Vec<String> = slot_of.keys().cloned().collect();
        let order = topological(graph, known.iter().map(String::as_str))?;
        let mut steps = Vec::with_capacity(order.len());
        let mut missing: Vec<String> = Vec::new();
        for node in order {
            let kernel = match ops::build(node, opsets) {
                Ok(Some(k)) => k,
                Ok(None) => {
                    let op = if node.domain.is_empty() {
                        node.op_type.clone()
                    } else {
                        format!("{}:{}", node.domain, node.op_type)
                    };
                    if !missing.contains(&op) {
                        missing.push(op);
                    }
                    continue;
                }
                Err(e) => return Err(node_error(node, e)),
            };
            let ins = node
                .input
                .iter()
                .map(|i| (!i.is_empty()).then(|| slot(i, &mut slot_of)))
                .collect();
            let outs = node.output.iter().map(|o| slot(o, &mut slot_of)).collect();
            steps.push(Step {
                kernel,
                inputs: ins,
                outputs: outs,
                name: node.name.clone(),
                op: node.op_type.clone(),
                frees: Vec::new(),
            });
        }
        if !missing.is_empty() {
            return Err(OnnxError::Unsupported(missing.join(", ")));
        }
        let outputs: Vec<usize> = graph
            .output
            .iter()
            .map(|o| {
                slot_of.get(&o.name).copied().ok_or_else(|| {
                    OnnxError::Model(format!("output {:?} is never produced", o.name))
                })
            })
            .collect::<Result<_, _>>()?;
        // Free each computed slot after its last reader (outputs and constants stay).
        let mut last: HashMap<usize, usize> = HashMap::new();
        for (i, step) in steps.iter().enumerate() {
            for s in step.inputs.iter().flatten() {
                last.insert(*s, i);
            }
        }
        let constant_slots: Vec<usize> = constants.iter().map(|(s, _)| *s).collect();
        for (s, i) in last {
            if !outputs.contains(&s) && !constant_slots.contains(&s) {
                steps[i].frees.push(s);
            }
        }
        Ok(Self {
            steps,
            constants,
            inputs: input_slots,
            outputs,
            slots: slot_of.len(),
        })
    }

    /// Runs the graph on its inputs (in declaration order).
    pub(crate) fn run(&self, inputs: Vec<Value>) -> Result<Vec<Value>, OnnxError> {
        let mut slots: Vec<Slot<'_>> = (0..self.slots).map(|_| Slot::Empty).collect();
        for (s, v) in &self.constants {
            slots[*s] = Slot::Borrowed(v);
        }
        for (s, v) in self.inputs.iter().zip(inputs) {
            slots[*s] = Slot::Owned(v);
        }
        for step in &self.steps {
            let produced = {
                let args: Vec<Option<&Value>> = step
                    .inputs
                    .iter()
                    .map(|i| i.and_then(|s| slots[s].get()))
                    .collect();
                step.kernel.run(&args).map_err(|e| OnnxError::Node {
                    node: if step.name.is_empty() {
                        step.outputs
                            .first()
                            .map(|o| format!("#{o}"))
                            .unwrap_or_default()
                    } else {
                        step.name.clone()
                    },
                    op: step.op.clone(),
                    source: Box::new(e),
                })?
            };
            for (s, v) in step.outputs.iter().zip(produced) {
                slots[*s] = Slot::Owned(v);
            }
            for s in &step.frees {
                slots[*s] = Slot::Empty;
            }
        }
        let mut out: Vec<Value> = Vec::with_capacity(self.outputs.len());
        for (i, &s) in self.outputs.iter().enumerate() {
            let v = match std::mem::replace(&mut slots[s], Slot::Empty) {
                Slot::Owned(v) => v,
                Slot::Borrowed(v) => v.clone(),
                Slot::Empty => match self.outputs[..i].iter().position(|&o| o == s) {
                    // The same value listed twice among the outputs.
                    Some(first) => out[first].clone(),
                    None => {
                        return Err(OnnxError::Model(format!(
                            "output slot {s} was not computed"
                        )));
                    }
                },
            };
            out.push(v);
        }
        Ok(out)
    }
}

fn node_error(node: &NodeProto, e: OnnxError) -> OnnxError {
    OnnxError::Node {
        node: node.name.clone(),
        op: node.op_type.clone(),
        source: Box::new(e),
    }
}
