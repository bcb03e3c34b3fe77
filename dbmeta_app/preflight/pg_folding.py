"""PostgreSQL built-in functions by what constant folding can do with them (data, generated once).

The planner evaluates a call whose arguments are all constants while it plans (``EXPLAIN`` included), unless
the function is an aggregate, a window function or returns a set. Generated from PostgreSQL 15's catalog
(one name for all its overloads)::

    SELECT p.proname,
           bool_and(p.prokind IN ('a', 'w') OR p.proretset) AS not_folded,
           bool_and(p.prokind = 'f' AND NOT p.proretset AND (t.typlen > 0 OR t.typname IN
                    ('numeric', 'inet', 'cidr', 'name', 'macaddr', 'macaddr8', 'money', 'interval'))) AS bounded
    FROM pg_proc p JOIN pg_type t ON t.oid = p.prorettype
    WHERE p.oid < 16384 AND p.pronamespace = 'pg_catalog'::regnamespace
    GROUP BY p.proname   -- VARIABLE_SIZE: neither

    NOT_FOLDED: every overload is an aggregate, a window function or set-returning
    VARIABLE_SIZE: not NOT_FOLDED, and some overload returns a type of variable length other than numeric,
                   inet, cidr, name, macaddr, macaddr8, money or interval (text, bytea, arrays, json, jsonb,
                   xml, tsvector, ranges, bit strings, geometric paths …)

Every other built-in name returns a value of bounded size whatever its arguments. A call of constants to a
VARIABLE_SIZE function is bounded by ``budget._pg_call_bound`` (a reviewed bound per name) or counted as
unbounded; a newer server's additions are unknown here and count as the size of their arguments.
"""

from __future__ import annotations

from typing import Final

__all__ = ["NOT_FOLDED", "VARIABLE_SIZE"]

NOT_FOLDED: Final[frozenset[str]] = frozenset(
    (
        "aclexplode array_agg avg bit_and bit_or bit_xor bool_and bool_or corr count covar_pop covar_samp "
        "cume_dist dense_rank every first_value generate_series generate_subscripts json_agg "
        "json_array_elements json_array_elements_text json_each json_each_text json_object_agg "
        "json_object_keys json_populate_recordset json_to_recordset jsonb_agg jsonb_array_elements "
        "jsonb_array_elements_text jsonb_each jsonb_each_text jsonb_object_agg jsonb_object_keys "
        "jsonb_path_query jsonb_path_query_tz jsonb_populate_recordset jsonb_to_recordset lag last_value lead "
        "max min mode nth_value ntile percent_rank percentile_cont percentile_disc "
        "pg_available_extension_versions pg_available_extensions pg_config pg_cursor "
        "pg_event_trigger_ddl_commands pg_event_trigger_dropped_objects pg_extension_update_paths "
        "pg_get_backend_memory_contexts pg_get_catalog_foreign_keys pg_get_keywords pg_get_multixact_members "
        "pg_get_publication_tables pg_get_replication_slots pg_get_shmem_allocations "
        "pg_get_wal_resource_managers pg_hba_file_rules pg_ident_file_mappings pg_listening_channels "
        "pg_lock_status pg_logical_slot_get_binary_changes pg_logical_slot_get_changes "
        "pg_logical_slot_peek_binary_changes pg_logical_slot_peek_changes pg_ls_archive_statusdir pg_ls_dir "
        "pg_ls_logdir pg_ls_logicalmapdir pg_ls_logicalsnapdir pg_ls_replslotdir pg_ls_tmpdir pg_ls_waldir "
        "pg_mcv_list_items pg_options_to_table pg_partition_ancestors pg_partition_tree pg_prepared_statement "
        "pg_prepared_xact pg_show_all_file_settings pg_show_all_settings pg_show_replication_origin_status "
        "pg_snapshot_xip pg_stat_get_activity pg_stat_get_backend_idset pg_stat_get_progress_info "
        "pg_stat_get_recovery_prefetch pg_stat_get_slru pg_stat_get_subscription pg_stat_get_wal_senders "
        "pg_tablespace_databases pg_timezone_abbrevs pg_timezone_names range_agg range_intersect_agg rank "
        "regexp_matches regexp_split_to_table regr_avgx regr_avgy regr_count regr_intercept regr_r2 "
        "regr_slope regr_sxx regr_sxy regr_syy row_number stddev stddev_pop stddev_samp string_agg "
        "string_to_table sum ts_debug ts_parse ts_stat ts_token_type txid_snapshot_xip unnest var_pop "
        "var_samp variance xmlagg"
    ).split()
)

VARIABLE_SIZE: Final[frozenset[str]] = frozenset(
    (
        "abbrev acldefault aclinsert aclitemout aclremove any_out anyarray_in anyarray_out anyarray_recv "
        "anyarray_send anycompatible_out anycompatiblearray_in anycompatiblearray_out anycompatiblearray_recv "
        "anycompatiblearray_send anycompatiblemultirange_in anycompatiblemultirange_out "
        "anycompatiblenonarray_out anycompatiblerange_in anycompatiblerange_out anyelement_out anyenum_out "
        "anymultirange_in anymultirange_out anynonarray_out anyrange_in anyrange_out anytextcat "
        "array_agg_array_finalfn array_agg_finalfn array_append array_cat array_dims array_fill array_in "
        "array_larger array_out array_positions array_prepend array_recv array_remove array_replace "
        "array_send array_smaller array_to_json array_to_string array_to_tsvector bit bit_in bit_out bit_recv "
        "bit_send bitand bitcat bitnot bitor bitshiftleft bitshiftright bittypmodout bitxor boolout boolsend "
        "box_out box_send bpchar bpchar_larger bpchar_smaller bpcharin bpcharout bpcharrecv bpcharsend "
        "bpchartypmodout brin_bloom_summary_in brin_bloom_summary_out brin_bloom_summary_recv "
        "brin_bloom_summary_send brin_minmax_multi_summary_in brin_minmax_multi_summary_out "
        "brin_minmax_multi_summary_recv brin_minmax_multi_summary_send btrim bytea_string_agg_finalfn "
        "byteacat byteain byteaout bytearecv byteasend cash_out cash_send cash_words charout charsend chr "
        "cidout cidr_out cidr_send cidsend circle_out circle_send col_description concat concat_ws convert "
        "convert_from convert_to cstring_in cstring_out cstring_recv cstring_send current_query "
        "current_schemas current_setting cursor_to_xml cursor_to_xmlschema database_to_xml "
        "database_to_xml_and_xmlschema database_to_xmlschema date_out date_send datemultirange daterange "
        "daterange_canonical decode encode enum_out enum_range enum_send event_trigger_out fdw_handler_out "
        "float4_accum float4out float4send float8_accum float8_combine float8_regr_accum float8_regr_combine "
        "float8out float8send format format_type gtsvector_union gtsvectorin gtsvectorout host "
        "index_am_handler_out inet_out inet_send initcap int2_avg_accum int2_avg_accum_inv int2out int2send "
        "int2vectorin int2vectorout int2vectorrecv int2vectorsend int4_avg_accum int4_avg_accum_inv "
        "int4_avg_combine int4multirange int4out int4range int4range_canonical int4send int8_avg_serialize "
        "int8multirange int8out int8range int8range_canonical int8send internal_out interval_accum "
        "interval_accum_inv interval_combine interval_out interval_send intervaltypmodout json_agg_finalfn "
        "json_array_element json_array_element_text json_build_array json_build_object json_extract_path "
        "json_extract_path_text json_in json_object json_object_agg_finalfn json_object_field "
        "json_object_field_text json_out json_recv json_send json_strip_nulls json_to_record json_to_tsvector "
        "json_typeof jsonb_agg_finalfn jsonb_array_element jsonb_array_element_text jsonb_build_array "
        "jsonb_build_object jsonb_concat jsonb_delete jsonb_delete_path jsonb_extract_path "
        "jsonb_extract_path_text jsonb_in jsonb_insert jsonb_object jsonb_object_agg_finalfn "
        "jsonb_object_field jsonb_object_field_text jsonb_out jsonb_path_query_array "
        "jsonb_path_query_array_tz jsonb_path_query_first jsonb_path_query_first_tz jsonb_pretty jsonb_recv "
        "jsonb_send jsonb_set jsonb_set_lax jsonb_strip_nulls jsonb_to_record jsonb_to_tsvector jsonb_typeof "
        "jsonpath_in jsonpath_out jsonpath_recv jsonpath_send language_handler_out left like_escape line_out "
        "line_send lo_get loread lower lpad lseg_out lseg_send ltrim macaddr8_out macaddr8_send macaddr_out "
        "macaddr_send md5 multirange multirange_agg_finalfn multirange_in multirange_intersect "
        "multirange_intersect_agg_transfn multirange_minus multirange_out multirange_recv multirange_send "
        "multirange_union nameout namesend normalize numeric_avg_serialize numeric_out numeric_poly_serialize "
        "numeric_send numeric_serialize numerictypmodout nummultirange numrange obj_description oidout "
        "oidsend oidvectorin oidvectorout oidvectorrecv oidvectorsend oidvectortypes overlay parse_ident path "
        "path_add path_add_pt path_div_pt path_in path_mul_pt path_out path_recv path_send path_sub_pt pclose "
        "percentile_cont_float8_multi_final percentile_cont_interval_multi_final percentile_disc_multi_final "
        "pg_backup_stop pg_blocking_pids pg_collation_actual_version pg_collation_for pg_column_compression "
        "pg_control_checkpoint pg_control_init pg_control_recovery pg_control_system "
        "pg_copy_logical_replication_slot pg_copy_physical_replication_slot "
        "pg_create_logical_replication_slot pg_create_physical_replication_slot pg_current_logfile "
        "pg_current_snapshot pg_database_collation_actual_version pg_ddl_command_out pg_ddl_command_send "
        "pg_dependencies_in pg_dependencies_out pg_dependencies_recv pg_dependencies_send pg_describe_object "
        "pg_export_snapshot pg_get_constraintdef pg_get_expr pg_get_function_arg_default "
        "pg_get_function_arguments pg_get_function_identity_arguments pg_get_function_result "
        "pg_get_function_sqlbody pg_get_functiondef pg_get_indexdef pg_get_object_address "
        "pg_get_partition_constraintdef pg_get_partkeydef pg_get_ruledef pg_get_serial_sequence "
        "pg_get_statisticsobjdef pg_get_statisticsobjdef_columns pg_get_statisticsobjdef_expressions "
        "pg_get_triggerdef pg_get_viewdef pg_get_wal_replay_pause_state pg_identify_object "
        "pg_identify_object_as_address pg_indexam_progress_phasename pg_last_committed_xact pg_lsn_out "
        "pg_lsn_send pg_mcv_list_in pg_mcv_list_out pg_mcv_list_recv pg_mcv_list_send pg_ndistinct_in "
        "pg_ndistinct_out pg_ndistinct_recv pg_ndistinct_send pg_node_tree_in pg_node_tree_out "
        "pg_node_tree_recv pg_node_tree_send pg_read_binary_file pg_read_file pg_read_file_old "
        "pg_relation_filepath pg_replication_slot_advance pg_safe_snapshot_blocking_pids "
        "pg_sequence_parameters pg_settings_get_flags pg_size_pretty pg_snapshot_in pg_snapshot_out "
        "pg_snapshot_recv pg_snapshot_send pg_stat_file pg_stat_get_archiver pg_stat_get_backend_activity "
        "pg_stat_get_backend_wait_event pg_stat_get_backend_wait_event_type pg_stat_get_replication_slot "
        "pg_stat_get_subscription_stats pg_stat_get_wal pg_stat_get_wal_receiver pg_tablespace_location "
        "pg_walfile_name pg_walfile_name_offset pg_xact_commit_timestamp_origin pg_xact_status "
        "phraseto_tsquery plainto_tsquery point_out point_send poly_in poly_out poly_recv poly_send polygon "
        "popen query_to_xml query_to_xml_and_xmlschema query_to_xmlschema querytree quote_ident quote_literal "
        "quote_nullable range_agg_finalfn range_gist_union range_in range_intersect "
        "range_intersect_agg_transfn range_merge range_minus range_out range_recv range_send range_union "
        "record_in record_out record_recv record_send regclassout regclasssend regcollationout "
        "regcollationsend regconfigout regconfigsend regdictionaryout regdictionarysend regexp_match "
        "regexp_replace regexp_split_to_array regexp_substr regnamespaceout regnamespacesend regoperatorout "
        "regoperatorsend regoperout regopersend regprocedureout regproceduresend regprocout regprocsend "
        "regroleout regrolesend regtypeout regtypesend repeat replace reverse right row_to_json rpad rtrim "
        "schema_to_xml schema_to_xml_and_xmlschema schema_to_xmlschema set_bit set_byte set_config setweight "
        "sha224 sha256 sha384 sha512 shell_out shobj_description similar_escape similar_to_escape split_part "
        "string_agg_finalfn string_to_array strip substr substring table_am_handler_out table_to_xml "
        "table_to_xml_and_xmlschema table_to_xmlschema text text_larger text_smaller textanycat textcat "
        "textin textout textrecv textsend tidout tidsend time_out time_send timeofday timestamp_out "
        "timestamp_send timestamptypmodout timestamptz_out timestamptz_send timestamptztypmodout "
        "timetypmodout timetz_out timetz_send timetztypmodout to_ascii to_char to_hex to_json to_jsonb "
        "to_tsquery to_tsvector translate trigger_out trim_array ts_delete ts_filter ts_headline ts_lexize "
        "ts_rewrite tsm_handler_out tsmultirange tsquery_and tsquery_not tsquery_or tsquery_phrase tsqueryin "
        "tsqueryout tsqueryrecv tsquerysend tsrange tstzmultirange tstzrange tsvector_concat "
        "tsvector_to_array tsvectorin tsvectorout tsvectorrecv tsvectorsend txid_current_snapshot "
        "txid_snapshot_in txid_snapshot_out txid_snapshot_recv txid_snapshot_send txid_status unistr "
        "unknownin unknownout unknownrecv unknownsend upper uuid_out uuid_send varbit varbit_in varbit_out "
        "varbit_recv varbit_send varbittypmodout varchar varcharin varcharout varcharrecv varcharsend "
        "varchartypmodout version void_out void_send websearch_to_tsquery xid8out xid8send xidout xidsend xml "
        "xml_in xml_out xml_recv xml_send xmlcomment xmlconcat2 xpath"
    ).split()
)
