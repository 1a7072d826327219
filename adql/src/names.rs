//! ADQL name rules on top of DataFusion's: DataFusion folds unquoted identifiers to lower case
//! and then matches exactly, so a table or column stored with upper-case letters (`RA_ICRS`)
//! could only be reached delimited. ADQL says regular identifiers match case-insensitively, so
//! before planning, every unquoted identifier that names a mixed-case schema, table or column
//! of the tables in the query is replaced by its exact, delimited spelling. Delimited
//! identifiers are left alone: they match exactly, as ADQL says.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::execution::context::SessionState;
use datafusion::sql::sqlparser::ast::{
    Expr, Ident, ObjectName, ObjectNamePart, Query, VisitMut, VisitorMut,
};

/// Lower-case spelling → exact spelling, for the names that are not all lower case.
type Spellings = HashMap<String, String>;

fn note(map: &mut Spellings, name: &str) {
    if name != name.to_ascii_lowercase() {
        map.insert(name.to_ascii_lowercase(), name.to_string());
    }
}

fn fix(ident: &mut Ident, map: &Spellings) {
    if ident.quote_style.is_none() {
        if let Some(exact) = map.get(&ident.value.to_ascii_lowercase()) {
            ident.value = exact.clone();
            ident.quote_style = Some('"');
        }
    }
}

/// The column names of the tables a query names, by the table's name as written there (its
/// parts in lower case, joined by '.').
pub(crate) type TableColumns = HashMap<String, Vec<String>>;

/// Rewrites unquoted identifiers of `query` to the exact spelling of what they name; returns
/// the columns of the tables it names.
pub(crate) async fn resolve(query: &mut Query, state: &SessionState) -> TableColumns {
    // The relations the query names.
    struct Relations(Vec<Vec<String>>);
    impl VisitorMut for Relations {
        type Break = ();
        fn pre_visit_relation(&mut self, r: &mut ObjectName) -> ControlFlow<()> {
            self.0.push(
                r.0.iter()
                    .filter_map(|p| p.as_ident().map(|i| i.value.clone()))
                    .collect(),
            );
            ControlFlow::Continue(())
        }
    }
    let mut rels = Relations(Vec::new());
    let _ = query.visit(&mut rels);

    let catalog_name = state.config().options().catalog.default_catalog.clone();
    let mut columns = TableColumns::new();
    let Some(catalog) = state.catalog_list().catalog(&catalog_name) else {
        return columns;
    };
    let mut map = Spellings::new();
    for parts in rels.0 {
        let written = parts
            .iter()
            .map(|p| p.to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(".");
        let (schema, table) = match parts.as_slice() {
            [s, t] => (Some(s.as_str()), t.as_str()),
            [_, s, t] => (Some(s.as_str()), t.as_str()),
            [t] => (None, t.as_str()),
            _ => continue,
        };
        let schema_name = match schema {
            Some(s) => catalog
                .schema_names()
                .into_iter()
                .find(|n| n.eq_ignore_ascii_case(s)),
            None => Some(state.config().options().catalog.default_schema.clone()),
        };
        let Some(schema_name) = schema_name else {
            continue;
        };
        note(&mut map, &schema_name);
        let Some(schema) = catalog.schema(&schema_name) else {
            continue;
        };
        let Some(table_name) = schema
            .table_names()
            .into_iter()
            .find(|n| n.eq_ignore_ascii_case(table))
        else {
            continue;
        };
        note(&mut map, &table_name);
        if let Ok(Some(provider)) = schema.table(&table_name).await {
            let fields = provider.schema();
            for f in fields.fields() {
                note(&mut map, f.name());
            }
            columns.insert(
                written,
                fields.fields().iter().map(|f| f.name().clone()).collect(),
            );
        }
    }
    if map.is_empty() {
        return columns;
    }

    struct Fix<'a>(&'a Spellings);
    impl VisitorMut for Fix<'_> {
        type Break = ();
        fn pre_visit_relation(&mut self, r: &mut ObjectName) -> ControlFlow<()> {
            for p in r.0.iter_mut() {
                if let ObjectNamePart::Identifier(i) = p {
                    fix(i, self.0);
                }
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            match e {
                Expr::Identifier(i) => fix(i, self.0),
                Expr::CompoundIdentifier(parts) => parts.iter_mut().for_each(|i| fix(i, self.0)),
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let _ = query.visit(&mut Fix(&map));
    columns
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Float64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::catalog::MemorySchemaProvider;
    use datafusion::common::TableReference;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    async fn context() -> SessionContext {
        let ctx = SessionContext::new();
        crate::register(&ctx);
        let schema = Arc::new(Schema::new(vec![
            Field::new("RA_ICRS", DataType::Float64, false),
            Field::new("DE_ICRS", DataType::Float64, false),
            Field::new("flux", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Float64Array::from(vec![10.0, 20.0])),
                Arc::new(Float64Array::from(vec![-5.0, 5.0])),
                Arc::new(Float64Array::from(vec![1.5, 2.5])),
            ],
        )
        .expect("batch");
        let cat = ctx.catalog("datafusion").expect("catalog");
        cat.register_schema("Survey", Arc::new(MemorySchemaProvider::new()))
            .expect("schema");
        let table = MemTable::try_new(schema, vec![vec![batch]]).expect("table");
        ctx.register_table(
            TableReference::partial("Survey", "Sources"),
            Arc::new(table),
        )
        .expect("register");
        ctx
    }

    async fn rows(ctx: &SessionContext, q: &str) -> Result<usize, crate::AdqlError> {
        let plan = crate::plan(&ctx.state(), q).await?;
        let batches = ctx
            .execute_logical_plan(plan)
            .await
            .expect("df")
            .collect()
            .await
            .expect("run");
        Ok(batches.iter().map(|b| b.num_rows()).sum())
    }

    #[tokio::test]
    async fn regular_identifiers_match_mixed_case_names() {
        let ctx = context().await;
        let q = "SELECT ra_icrs, De_Icrs, s.FLUX FROM survey.sources AS s WHERE RA_icrs > 15";
        assert_eq!(rows(&ctx, q).await.expect("plans"), 1);
        let q = "SELECT TOP 1 * FROM SURVEY.SOURCES WHERE 1 = CONTAINS(POINT(ra_icrs, de_icrs), CIRCLE(10, -5, 1))";
        assert_eq!(rows(&ctx, q).await.expect("plans"), 1);
    }

    #[tokio::test]
    async fn delimited_identifiers_stay_exact() {
        let ctx = context().await;
        assert_eq!(
            rows(&ctx, "SELECT \"RA_ICRS\" FROM \"Survey\".\"Sources\"")
                .await
                .expect("exact"),
            2
        );
        assert!(rows(&ctx, "SELECT \"ra_icrs\" FROM survey.sources")
            .await
            .is_err());
    }
}
