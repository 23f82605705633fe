"""intrepid.app: the review web application (``intrepid serve``); needs the ``app`` extra."""
