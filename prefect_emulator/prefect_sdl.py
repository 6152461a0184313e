"""The part of the GraphQL schema that Prefect Server's own Python service adds on top of Hasura.

Type and field names are the interface prefect's client depends on (it sends `$input: create_flow_run_input!`
and reads `flow_run_ids`, `states { status message }`...), so they follow Prefect Server 1.4.1. Only the
mutations and queries the client, agents, CLI and UI use are declared; anything else gets graphql-core's
"Cannot query field ... on type Mutation" error, which names the field.
"""
from __future__ import annotations

PREFECT_SDL = '''
scalar JSON
scalar DateTime
scalar UUID

enum log_level { DEBUG INFO WARNING ERROR CRITICAL }

type success_payload { success: Boolean error: String }
type id_payload { id: UUID }
type flow_id_payload { id: UUID }
type tenant_id_payload { id: UUID }
type project_id_payload { id: UUID }
type flow_run_id_payload { id: UUID }
type task_run_id_payload { id: UUID }
type agent_id_payload { id: UUID }
type agent_config_id_payload { id: UUID }
type create_task_run_artifact_payload { id: UUID }
type runs_in_queue_payload { flow_run_ids: [String!] }
type task_run_info_payload { id: UUID version: Int state: String serialized_state: JSON }
type get_or_create_task_run_info_payload { id: UUID version: Int state: String serialized_state: JSON }
type mapped_children_payload { min_start_time: DateTime max_end_time: DateTime state_counts: JSON }
type set_flow_run_state_payload { id: UUID status: String message: String }
type set_flow_run_states_payload { states: [set_flow_run_state_payload!] }
type set_task_run_state_payload { id: UUID status: String message: String }
type set_task_run_states_payload { states: [set_task_run_state_payload!] }
type cancel_flow_run_payload { state: String }
type api_info { backend: String mode: String version: String core_version: String release_timestamp: String }
type reference_data { state_hierarchy: JSON! state_info: JSON! }
type auth_info { tenant_id: UUID user_id: UUID api_token_scope: String }

input create_tenant_input { name: String! slug: String! }
input update_tenant_name_input { tenant_id: UUID! name: String! }
input update_tenant_slug_input { tenant_id: UUID! slug: String! }
input update_tenant_settings_input { tenant_id: UUID! settings: JSON }
input delete_tenant_input { confirm: Boolean! tenant_id: UUID! }
input create_project_input { tenant_id: UUID! name: String! description: String }
input delete_project_input { project_id: UUID! }
input set_project_name_input { project_id: UUID! name: String! }
input set_project_description_input { project_id: UUID! description: String }

input create_flow_input {
  serialized_flow: JSON! project_id: UUID! version_group_id: String set_schedule_active: Boolean
  description: String idempotency_key: String
}
input create_flow_from_compressed_string_input {
  serialized_flow: String! project_id: UUID! version_group_id: String set_schedule_active: Boolean
  description: String idempotency_key: String
}
input register_tasks_input { serialized_tasks: JSON! flow_id: UUID! }
input register_edges_input { serialized_edges: JSON! flow_id: UUID! }
input delete_flow_input { flow_id: UUID! }
input archive_flow_input { flow_id: UUID! }
input update_flow_project_input { flow_id: UUID! project_id: UUID! }
input set_schedule_active_input { flow_id: UUID! }
input set_schedule_inactive_input { flow_id: UUID! }
input enable_flow_heartbeat_input { flow_id: UUID! }
input disable_flow_heartbeat_input { flow_id: UUID! }
input enable_flow_lazarus_process_input { flow_id: UUID! }
input disable_flow_lazarus_process_input { flow_id: UUID! }
input delete_flow_group_input { flow_group_id: UUID! }
input set_flow_group_labels_input { flow_group_id: UUID! labels: [String!] }
input set_flow_group_description_input { flow_group_id: UUID! description: String }
input set_flow_group_run_config_input { flow_group_id: UUID! run_config: JSON }
input set_flow_group_default_parameters_input { flow_group_id: UUID! parameters: JSON! }
input cron_clock_input { cron: String! parameter_defaults: JSON }
input interval_clock_input { interval: Int! parameter_defaults: JSON }
input set_flow_group_schedule_input {
  flow_group_id: UUID! cron_clocks: [cron_clock_input!] interval_clocks: [interval_clock_input!] timezone: String
}
input delete_flow_group_schedule_input { flow_group_id: UUID! }

input create_flow_run_input {
  flow_id: UUID parameters: JSON labels: [String!] run_config: JSON context: JSON
  scheduled_start_time: DateTime idempotency_key: String flow_run_name: String version_group_id: String
}
input delete_flow_run_input { flow_run_id: UUID! }
input set_flow_run_labels_input { flow_run_id: UUID! labels: [String!]! }
input set_flow_run_name_input { flow_run_id: UUID! name: String! }
input set_task_run_name_input { task_run_id: UUID! name: String! }
input get_or_create_task_run_input { flow_run_id: UUID! task_id: UUID! map_index: Int }
input get_or_create_task_run_info_input { flow_run_id: UUID! task_id: UUID! map_index: Int }
input update_flow_run_heartbeat_input { flow_run_id: UUID! }
input update_task_run_heartbeat_input { task_run_id: UUID! }
input get_runs_in_queue_input { tenant_id: UUID! before: DateTime labels: [String!] agent_id: UUID }

input set_flow_run_state_input { flow_run_id: UUID! version: Int state: JSON! }
input set_flow_run_states_input { states: [set_flow_run_state_input!]! }
input set_task_run_state_input { task_run_id: UUID! version: Int state: JSON! flow_run_version: Int }
input set_task_run_states_input { states: [set_task_run_state_input!]! }
input cancel_flow_run_input { flow_run_id: UUID! }

input write_run_log_input {
  flow_run_id: UUID! task_run_id: UUID timestamp: DateTime message: String name: String level: log_level
  info: JSON
}
input write_run_logs_input { logs: [write_run_log_input!]! }

input register_agent_input { tenant_id: UUID labels: [String!] agent_config_id: UUID type: String! name: String }
input delete_agent_input { agent_id: UUID! }
input create_agent_config_input { tenant_id: UUID! name: String settings: JSON }
input delete_agent_config_input { agent_config_id: UUID! }

input create_task_run_artifact_input { task_run_id: UUID! kind: String! data: JSON! tenant_id: UUID }
input update_task_run_artifact_input { task_run_artifact_id: UUID! data: JSON! }
input delete_task_run_artifact_input { task_run_artifact_id: UUID! }

extend type Query {
  hello: String
  api: api_info
  reference_data: reference_data
  auth_info: auth_info
  mapped_children(task_run_id: UUID!): mapped_children_payload
  get_task_run_info(task_run_id: UUID!): task_run_info_payload
}

type Mutation {
  create_tenant(input: create_tenant_input!): tenant_id_payload
  update_tenant_name(input: update_tenant_name_input!): tenant_id_payload
  update_tenant_slug(input: update_tenant_slug_input!): tenant_id_payload
  update_tenant_settings(input: update_tenant_settings_input!): tenant_id_payload
  delete_tenant(input: delete_tenant_input!): success_payload
  create_project(input: create_project_input!): project_id_payload
  delete_project(input: delete_project_input!): success_payload
  set_project_name(input: set_project_name_input!): project_id_payload
  set_project_description(input: set_project_description_input!): project_id_payload

  create_flow(input: create_flow_input!): flow_id_payload
  create_flow_from_compressed_string(input: create_flow_from_compressed_string_input!): flow_id_payload
  register_tasks(input: register_tasks_input!): success_payload
  register_edges(input: register_edges_input!): success_payload
  delete_flow(input: delete_flow_input!): success_payload
  archive_flow(input: archive_flow_input!): success_payload
  update_flow_project(input: update_flow_project_input!): flow_id_payload
  set_schedule_active(input: set_schedule_active_input!): success_payload
  set_schedule_inactive(input: set_schedule_inactive_input!): success_payload
  enable_flow_heartbeat(input: enable_flow_heartbeat_input!): success_payload
  disable_flow_heartbeat(input: disable_flow_heartbeat_input!): success_payload
  enable_flow_lazarus_process(input: enable_flow_lazarus_process_input!): success_payload
  disable_flow_lazarus_process(input: disable_flow_lazarus_process_input!): success_payload
  delete_flow_group(input: delete_flow_group_input!): success_payload
  set_flow_group_labels(input: set_flow_group_labels_input!): success_payload
  set_flow_group_description(input: set_flow_group_description_input!): success_payload
  set_flow_group_run_config(input: set_flow_group_run_config_input!): success_payload
  set_flow_group_default_parameters(input: set_flow_group_default_parameters_input!): success_payload
  set_flow_group_schedule(input: set_flow_group_schedule_input!): success_payload
  delete_flow_group_schedule(input: delete_flow_group_schedule_input!): success_payload

  create_flow_run(input: create_flow_run_input!): flow_run_id_payload
  delete_flow_run(input: delete_flow_run_input!): success_payload
  set_flow_run_labels(input: set_flow_run_labels_input!): success_payload
  set_flow_run_name(input: set_flow_run_name_input!): success_payload
  set_task_run_name(input: set_task_run_name_input!): success_payload
  get_or_create_task_run(input: get_or_create_task_run_input!): task_run_id_payload
  get_or_create_task_run_info(input: get_or_create_task_run_info_input!): get_or_create_task_run_info_payload
  update_flow_run_heartbeat(input: update_flow_run_heartbeat_input!): success_payload
  update_task_run_heartbeat(input: update_task_run_heartbeat_input!): success_payload
  get_runs_in_queue(input: get_runs_in_queue_input!): runs_in_queue_payload

  set_flow_run_states(input: set_flow_run_states_input!): set_flow_run_states_payload
  set_task_run_states(input: set_task_run_states_input!): set_task_run_states_payload
  cancel_flow_run(input: cancel_flow_run_input!): cancel_flow_run_payload

  write_run_logs(input: write_run_logs_input!): success_payload

  register_agent(input: register_agent_input!): agent_id_payload
  delete_agent(input: delete_agent_input!): success_payload
  create_agent_config(input: create_agent_config_input!): agent_config_id_payload
  delete_agent_config(input: delete_agent_config_input!): success_payload

  create_task_run_artifact(input: create_task_run_artifact_input!): create_task_run_artifact_payload
  update_task_run_artifact(input: update_task_run_artifact_input!): success_payload
  delete_task_run_artifact(input: delete_task_run_artifact_input!): success_payload
}
'''
