// Customer Portal card (Phase 78): not installed yet; its phase replaces this file with an echoops.registerCard({...}) call.
