"""Server's query depth limit: its Apollo validates every request with graphql-depth-limit's rule at 7.

The count follows that rule: a root field is at depth 0, each field of a selection one level deeper, fragments
and inline fragments add nothing, fields starting with `__` (introspection, `__typename`) are not counted.
A field reached at a depth above the limit fails validation with the rule's message,
"'<operation name>' exceeds maximum operation depth of 7" (an unnamed operation: '').
"""
from __future__ import annotations

from typing import Any, Dict, FrozenSet

from graphql import GraphQLError, ValidationRule
from graphql.language import (DocumentNode, FieldNode, FragmentDefinitionNode, FragmentSpreadNode,
                              InlineFragmentNode, OperationDefinitionNode)

MAX_DEPTH = 7  # services/apollo/src/index.js: validationRules: [depthLimit(7)]


class DepthLimitRule(ValidationRule):
    """graphql-core validation rule: one error per path that goes deeper than MAX_DEPTH."""

    def enter_document(self, node: DocumentNode, *_args: Any) -> None:
        fragments = {d.name.value: d for d in node.definitions if isinstance(d, FragmentDefinitionNode)}
        for definition in node.definitions:
            if isinstance(definition, OperationDefinitionNode):
                name = definition.name.value if definition.name else ""
                self._walk(definition, fragments, 0, name, frozenset())

    def _walk(self, node: Any, fragments: Dict[str, FragmentDefinitionNode], depth: int, operation: str,
              spreading: FrozenSet[str]) -> None:
        if depth > MAX_DEPTH:
            self.report_error(GraphQLError(f"'{operation}' exceeds maximum operation depth of {MAX_DEPTH}", node))
            return
        if isinstance(node, FieldNode):
            if node.name.value.startswith("__") or node.selection_set is None:
                return
            for selection in node.selection_set.selections:
                self._walk(selection, fragments, depth + 1, operation, spreading)
        elif isinstance(node, FragmentSpreadNode):
            name = node.name.value
            # a fragment cycle is NoFragmentCyclesRule's error; here it must only not recurse forever
            if name in fragments and name not in spreading:
                self._walk(fragments[name], fragments, depth, operation, spreading | {name})
        elif isinstance(node, (InlineFragmentNode, FragmentDefinitionNode, OperationDefinitionNode)):
            for selection in node.selection_set.selections:
                self._walk(selection, fragments, depth, operation, spreading)
