// Cost Guardrails card (Phase 79): not installed yet; its phase replaces this file with an echoops.registerCard({...}) call.
