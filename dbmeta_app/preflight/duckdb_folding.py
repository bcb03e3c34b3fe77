"""DuckDB scalar functions whose result can be of any size (data, generated once from DuckDB 2.0.1).

DuckDB folds calls of constants while it plans, in the service's own process. Generated with::

    SELECT function_name FROM duckdb_functions() WHERE function_type IN ('scalar', 'macro')
    GROUP BY function_name
    HAVING bool_or(NOT (return_type IN (<fixed-size types>) OR return_type LIKE 'DECIMAL%'))

less the collations (``collate_*``, ``icu_collate_*``: their input, reordered), the spatial ``st_*``
functions and internal names. A call of constants to one of them needs a reviewed bound
(``budget._glot_call_bound``) or counts as unbounded.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DUCKDB_VARIABLE_SIZE"]

DUCKDB_VARIABLE_SIZE: Final[frozenset[str]] = frozenset(
    (
        "add aggregate alias apply array_aggr array_aggregate array_apply array_cat array_concat "
        "array_cross_product array_distinct array_extract array_filter array_grade_up array_intersect "
        "array_reduce array_resize array_reverse_sort array_select array_slice array_sort array_to_json "
        "array_transform array_value array_where array_zip bar base64 bin bitstring bitstring_byte_comparable "
        "cast_to_type chr combine concat concat_ws constant_or_null create_sort_key current_database "
        "current_query current_schema current_schemas current_setting date_part datepart dayname decode "
        "element_at encode enum_code enum_first enum_last enum_range enum_range_boundary equi_width_bins "
        "error filter finalize flatten format format_bytes from_base64 from_binary from_hex from_json "
        "from_json_strict generate_series get_type getvariable grade_up greatest hex hive_partition_component "
        "icu_sort_key index_key invoke json_array json_array_length json_deep_merge json_deserialize_sql "
        "json_exists json_extract json_extract_path json_extract_path_text json_extract_string json_insert "
        "json_keys json_merge_patch json_merge_patch_diff json_normalize json_object json_pretty json_quote "
        "json_remove json_replace json_serialize_plan json_serialize_sql json_set json_strip_nulls "
        "json_structure json_transform json_transform_strict json_type json_value lcase least left "
        "left_grapheme list_aggr list_aggregate list_apply list_cat list_concat list_distinct list_element "
        "list_extract list_filter list_grade_up list_intersect list_pack list_reduce list_resize "
        "list_reverse_sort list_select list_slice list_sort list_transform list_value list_where list_zip "
        "lower lpad ltrim make_type map map_concat map_entries map_extract map_extract_value map_from_entries "
        "map_keys map_values md5 monthname nfc_normalize overlay parse_dirname parse_dirpath "
        "parse_duckdb_log_message parse_filename parse_path path_join printf range reduce regexp_escape "
        "regexp_extract regexp_extract_all regexp_replace regexp_split_to_array remap_struct repeat replace "
        "replace_type reverse right right_grapheme row row_to_json rpad rtrim set_bit setseed sha1 sha256 "
        "sleep_ms split stats str_split str_split_regex strftime string_split string_split_regex "
        "string_to_array strip_accents struct_concat struct_extract struct_extract_at struct_insert "
        "struct_keys struct_pack struct_update struct_values substr substring substring_grapheme subtract "
        "switch timezone to_aggregate_state to_base to_base64 to_binary to_hex to_json translate trim typeof "
        "ucase unbin unhex union_extract union_tag union_value unpivot_list upper url_decode url_encode "
        "variant_array_length variant_bytes_to_variant variant_comparator variant_exists variant_extract "
        "variant_extract_string variant_keys variant_normalize variant_to_parquet_variant variant_type "
        "variant_typeof vector_type version write_log xor"
    ).split()
)
